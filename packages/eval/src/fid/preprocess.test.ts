import * as fs from 'node:fs';
import * as path from 'node:path';
import { preprocessInception } from './preprocess';

const DIR = path.resolve(__dirname, '../../../../../shared/reference/fid_preprocess');
const cases = (
  JSON.parse(fs.readFileSync(path.join(DIR, 'cases.json'), 'utf8')) as {
    cases: { name: string; input_file: string; input_shape_hwc: [number, number, number]; output_file: string }[];
  }
).cases;

describe('pytorch-fid preprocessing (bilinear 299, align_corners=False, 2x-1) matches fid_preprocess/', () => {
  test.each(cases.map((c) => [c.name, c] as const))('%s', (_name, c) => {
    const input = new Uint8Array(fs.readFileSync(path.join(DIR, c.input_file)));
    const raw = fs.readFileSync(path.join(DIR, c.output_file));
    const expected = new Float32Array(raw.buffer, raw.byteOffset, raw.byteLength / 4);
    const [height, width] = c.input_shape_hwc;
    const got = preprocessInception({ width, height, data: input });
    expect(got.length).toBe(expected.length);
    let maxErr = 0;
    for (let i = 0; i < got.length; i++) maxErr = Math.max(maxErr, Math.abs(got[i] - expected[i]));
    expect(maxErr).toBeLessThanOrEqual(1e-6);
  });

  test('rejects a buffer that is not h*w*3 bytes', () => {
    expect(() => preprocessInception({ width: 4, height: 4, data: new Uint8Array(16) })).toThrow(/expected 48/);
  });
});
