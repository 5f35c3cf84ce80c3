import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import sharp from 'sharp';
import { readGray, runCli, writeTinyModel } from './tiny-model.test-util';

jest.setTimeout(60_000);

let tmp: string;
let model: string;
let input: string;
/** The input's pixels: a gradient with texture, so no 7x7 token is uniform. */
const pixels = Buffer.from(Array.from({ length: 28 * 28 }, (_, i) => (i * 37 + (i >> 3)) & 255));

/** Raster index of the 7x7 token holding pixel i of a 28x28 image. */
const tokenOf = (i: number) => Math.floor(Math.floor(i / 28) / 7) * 4 + Math.floor((i % 28) / 7);

beforeAll(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cli-edit-'));
  model = path.join(tmp, 'model');
  await writeTinyModel(model);
  input = path.join(tmp, 'input.png');
  await sharp(pixels, { raw: { width: 28, height: 28, channels: 1 } }).png().toFile(input);
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** Runs an edit and checks: pixels of kept tokens are identical, those of regenerated tokens are new. */
async function expectEdit(mask: string, regenerated: Set<number>, extra: string[] = []): Promise<void> {
  const out = path.join(tmp, `edit-${path.basename(mask)}.png`);
  const r = runCli(['edit', '--model', model, '--input', input, '--mask', mask, '--class', '3', '--steps', '10', '--out', out, ...extra]);
  expect({ status: r.status, error: r.status ? r.stderr : '' }).toEqual({ status: 0, error: '' });
  expect(r.stdout).toContain(`regenerated ${regenerated.size} of 16 tokens`);
  const edited = await readGray(out);
  expect([edited.width, edited.height]).toEqual([28, 28]);
  let changed = 0;
  for (let i = 0; i < pixels.length; i++) {
    if (regenerated.has(tokenOf(i))) changed += edited.data[i] !== pixels[i] ? 1 : 0;
    else expect(edited.data[i]).toBe(pixels[i]);
  }
  // an untrained model draws noise: nearly every regenerated pixel differs from the input
  expect(changed).toBeGreaterThan(0.8 * regenerated.size * 49);
}

describe('causalfusion edit', () => {
  it('--mask center regenerates the central 2x2 tokens and keeps every other pixel identical', async () => {
    await expectEdit('center', new Set([5, 6, 9, 10]), ['--ar-steps', '2', '--order', 'random']);
  });

  it('--mask top regenerates the top half and keeps the bottom half', async () => {
    await expectEdit('top', new Set([0, 1, 2, 3, 4, 5, 6, 7]));
  });

  it('a mask image: a token is regenerated when any of its pixels is white', async () => {
    const mask = Buffer.alloc(28 * 28); // black = keep
    mask[3 * 28 + 10] = 255; // one white pixel in token 1
    for (let y = 14; y < 21; y++) for (let x = 21; x < 28; x++) mask[y * 28 + x] = 255; // all of token 11
    const file = path.join(tmp, 'mask.png');
    await sharp(mask, { raw: { width: 28, height: 28, channels: 1 } }).png().toFile(file);
    await expectEdit(file, new Set([1, 11]));
  });

  it('an input of another size and color is brought to the model size; several classes give a grid', async () => {
    const big = path.join(tmp, 'big.png');
    await sharp(pixels, { raw: { width: 28, height: 28, channels: 1 } }).toColourspace('srgb').resize(56, 40).png().toFile(big);
    const out = path.join(tmp, 'grid.png');
    const r = runCli(['edit', '--model', model, '--input', big, '--class', '3,4', '--num', '2', '--steps', '5', '--out', out]);
    expect({ status: r.status, error: r.status ? r.stderr : '' }).toEqual({ status: 0, error: '' });
    const grid = await readGray(out);
    expect([grid.width, grid.height]).toEqual([2 * 28, 2 * 28]);
  });

  it('bad input is one line on stderr with exit code 2', async () => {
    const corrupt = path.join(tmp, 'corrupt.png');
    fs.writeFileSync(corrupt, 'not a png at all');
    const small = path.join(tmp, 'small-mask.png');
    await sharp(Buffer.alloc(20 * 20, 255), { raw: { width: 20, height: 20, channels: 1 } }).png().toFile(small);
    const black = path.join(tmp, 'black-mask.png');
    await sharp(Buffer.alloc(28 * 28), { raw: { width: 28, height: 28, channels: 1 } }).png().toFile(black);
    const cases: [string[], RegExp][] = [
      [['--input', path.join(tmp, 'missing.png')], /^error: --input: .*missing\.png does not exist$/],
      [['--input', corrupt], /^error: --input: cannot read .*corrupt\.png as an image/],
      [['--mask', small], /^error: --mask: .*small-mask\.png is 20x20; a mask must match the model's 28x28 images$/],
      [['--mask', black], /^error: --mask: .*black-mask\.png is all black/],
      [['--mask', 'middle'], /^error: --mask: 'middle' is neither a region \(center, top, bottom, outer\) nor an existing mask image$/],
      [['--class', 'cat'], /^error: --class: unknown class 'cat'; this test model knows 0, 1, 2, 3, 4, 5, 6, 7, 8, 9$/],
    ];
    for (const [args, message] of cases) {
      const r = runCli(['edit', '--model', model, '--input', input, '--class', '3', '--out', path.join(tmp, 'x.png'), ...args]);
      expect(r.stderr.trim()).toMatch(message);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.status).toBe(2);
    }
  });
});
