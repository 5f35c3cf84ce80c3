import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import sharp from 'sharp';
import { CaptionCodec, CaptionedDataset, initBackend, loadCaptionTokenizer, MultimodalModel, saveMultimodalModel } from '@causalfusion/multimodal';
import { readGray, runCli } from './tiny-model.test-util';

jest.setTimeout(120_000);

let tmp: string;
let model: string;

beforeAll(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cli-multimodal-'));
  model = path.join(tmp, 'model');
  await initBackend({ backend: 'wasm', quiet: true });
  const tokenizer = loadCaptionTokenizer();
  const m = new MultimodalModel(
    { imageHeight: 16, imageWidth: 32, channels: 1, patchSize: 4, textLength: 18, vocabSize: tokenizer.vocabSize, hiddenSize: 32, depth: 1, numHeads: 2, mlpRatio: 2, captionDropoutProb: 0.1 },
    { seed: 0 },
  );
  saveMultimodalModel(m, model, new CaptionCodec(tokenizer, 18));
  m.dispose();
  const item = new CaptionedDataset({ split: 'heldout', count: 1 }).get(0);
  await sharp(Buffer.from(item.image), { raw: { width: 32, height: 16, channels: 1 } }).png().toFile(path.join(tmp, 'scene.png'));
  await sharp(Buffer.alloc(28 * 28), { raw: { width: 28, height: 28, channels: 1 } }).png().toFile(path.join(tmp, 'digit.png'));
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe('causalfusion generate / caption (tiny random model)', () => {
  it('generate writes a row of images; the same seed gives the same images', async () => {
    const args = ['generate', '--model', model, '--prompt', 'a large 3 to the left of a small eight', '--num', '3', '--ar-steps', '4', '--steps', '5', '--zoom', '1'];
    const a = runCli([...args, '--out', path.join(tmp, 'a.png')]);
    expect(a.stderr).toBe('');
    expect(a.status).toBe(0);
    expect(a.stdout).toMatch(/3 images for "a large 3 to the left of a small eight", 4 AR steps x 5 steps, CFG 2, seed 0/);
    const img = await readGray(path.join(tmp, 'a.png'));
    expect([img.width, img.height]).toEqual([3 * 32, 16]);
    runCli([...args, '--out', path.join(tmp, 'b.png')]);
    expect((await readGray(path.join(tmp, 'b.png'))).data.equals(img.data)).toBe(true);
  });

  it('caption prints captions (greedy and seeded sampling)', () => {
    const greedy = runCli(['caption', '--model', model, '--input', path.join(tmp, 'scene.png')]);
    expect(greedy.status).toBe(0);
    expect(greedy.stdout.trim().split('\n')).toHaveLength(1);
    const s1 = runCli(['caption', '--model', model, '--input', path.join(tmp, 'scene.png'), '--top-k', '20', '--temperature', '1.5', '--num', '3', '--seed', '4']);
    const s2 = runCli(['caption', '--model', model, '--input', path.join(tmp, 'scene.png'), '--top-k', '20', '--temperature', '1.5', '--num', '3', '--seed', '4']);
    expect(s1.status).toBe(0);
    expect(s1.stdout.trim().split('\n')).toHaveLength(3);
    expect(s2.stdout).toBe(s1.stdout);
  });

  it('one-line errors with exit code 2', () => {
    const cases: [string[], RegExp][] = [
      [['generate', '--model', model, '--prompt', 'a large cat'], /unknown word "cat"; the model knows: /],
      [['generate', '--model', path.join(tmp, 'nope'), '--prompt', 'a 3'], /--model .*nope does not exist/],
      [['generate', '--model', tmp, '--prompt', 'a 3'], /is not a multimodal model folder: model.safetensors is missing/],
      [['generate', '--model', model, '--prompt', 'a 3', '--ar-steps', '40'], /--ar-steps must be an integer from 1 to 32/],
      [['caption', '--model', model, '--input', path.join(tmp, 'digit.png')], /digit.png is 28x28; this model captions 32x16 images/],
      [['caption', '--model', model, '--input', path.join(tmp, 'missing.png')], /--input: .*missing.png does not exist/],
      [['caption', '--model', model, '--input', path.join(tmp, 'scene.png'), '--greedy', '--top-k', '3'], /--greedy cannot be combined/],
      [['caption', '--model', model, '--input', path.join(tmp, 'scene.png'), '--top-p', '2'], /--top-p must be in \(0, 1\]/],
    ];
    for (const [args, message] of cases) {
      const r = runCli(args);
      expect(r.status).toBe(2);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr).toMatch(message);
    }
  });
});
