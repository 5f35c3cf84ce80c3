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
  await sharp(pixels, { raw: { width: 28, height: 28, channels: 1 } })
    .png()
    .toFile(input);
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
    await sharp(mask, { raw: { width: 28, height: 28, channels: 1 } })
      .png()
      .toFile(file);
    await expectEdit(file, new Set([1, 11]));
  });

  it('an input of another size and color: the edits keep its size and its pixels; several classes give a grid', async () => {
    const big = path.join(tmp, 'big.png');
    await sharp(pixels, { raw: { width: 28, height: 28, channels: 1 } })
      .toColourspace('srgb')
      .resize(56, 40)
      .png()
      .toFile(big);
    const out = path.join(tmp, 'grid.png');
    const r = runCli(['edit', '--model', model, '--input', big, '--class', '3,4', '--num', '2', '--steps', '5', '--out', out]);
    expect({ status: r.status, error: r.status ? r.stderr : '' }).toEqual({ status: 0, error: '' });
    expect(r.stderr).toMatch(
      /^note: --input: .*big\.png is 56x40, center-cropped to 40x40, resized by area to 28x28 for the model; the edit is put back into its 56x40 pixels$/m,
    );
    const grid = await readGray(out);
    expect([grid.width, grid.height]).toEqual([2 * 56, 2 * 40]);
    // every cell: the input (read as gray) outside the central 2x2 tokens, which cover crop pixels 10..29 (centers in model pixels 7..20)
    const source = await readGray(big);
    for (let cell = 0; cell < 4; cell++) {
      const [top, left] = [Math.floor(cell / 2) * 40, (cell % 2) * 56];
      for (let y = 0; y < 40; y++)
        for (let x = 0; x < 56; x++) {
          const inRegion = y >= 10 && y < 30 && x - 8 >= 10 && x - 8 < 30;
          if (!inRegion) expect(grid.data[(top + y) * grid.width + left + x]).toBe(source.data[y * 56 + x]);
        }
    }
  });

  it('bad input is one line on stderr with exit code 2', async () => {
    const corrupt = path.join(tmp, 'corrupt.png');
    fs.writeFileSync(corrupt, 'not a png at all');
    const folder = path.join(tmp, 'a-folder');
    fs.mkdirSync(folder, { recursive: true });
    const black = path.join(tmp, 'black-mask.png');
    await sharp(Buffer.alloc(28 * 28), { raw: { width: 28, height: 28, channels: 1 } })
      .png()
      .toFile(black);
    const cases: [string[], RegExp][] = [
      [['--input', path.join(tmp, 'missing.png')], /^error: --input: .*missing\.png does not exist$/],
      [['--input', corrupt], /^error: --input: cannot read .*corrupt\.png as an image/],
      [['--mask', folder], /^error: --mask: .*a-folder is a folder, not an image$/],
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

describe("causalfusion edit keeps every kept pixel at the input's own resolution (a 16x16 model in 4x4 patches, as shipped)", () => {
  let model16: string;
  beforeAll(async () => {
    model16 = path.join(tmp, 'model16');
    await writeTinyModel(model16, undefined, { imageSize: 16, patchSize: 4 });
  });

  /** A textured gray image of side n (no two neighbours alike). */
  async function texture(n: number): Promise<{ file: string; data: Buffer }> {
    const data = Buffer.from(Array.from({ length: n * n }, (_, i) => (i * 37 + (i >> 3)) & 255));
    const file = path.join(tmp, `texture-${n}.png`);
    await sharp(data, { raw: { width: n, height: n, channels: 1 } })
      .png()
      .toFile(file);
    return { file, data };
  }

  /** Runs an edit; the output has the input's size, pixels outside `regenerated` are identical, most inside changed. */
  async function expectKept(input: string, before: Buffer, side: number, regenerated: (y: number, x: number) => boolean, args: string[]) {
    const out = path.join(tmp, `kept-${side}-${args.join('')}.png`.replace(/[^\w.-]/g, '_'));
    const r = runCli(['edit', '--model', model16, '--input', input, '--class', '3', '--steps', '5', '--out', out, ...args]);
    expect({ status: r.status, error: r.status ? r.stderr : '' }).toEqual({ status: 0, error: '' });
    const edited = await readGray(out);
    expect([edited.width, edited.height]).toEqual([side, side]);
    let inside = 0;
    let changed = 0;
    let keptDiffer = 0;
    for (let y = 0; y < side; y++)
      for (let x = 0; x < side; x++) {
        const i = y * side + x;
        if (regenerated(y, x)) {
          inside++;
          changed += edited.data[i] !== before[i] ? 1 : 0;
        } else keptDiffer += edited.data[i] !== before[i] ? 1 : 0;
      }
    expect(keptDiffer).toBe(0);
    expect(inside).toBeGreaterThan(0);
    expect(changed).toBeGreaterThan(0.8 * inside);
    return r;
  }

  it("the issue's case: sample --num 1 writes 32x32 (zoom 2); edit --mask top keeps the bottom 32x16 pixels exactly", async () => {
    const one = path.join(tmp, 'one.png');
    const s = runCli(['sample', '--model', model16, '--class', '7', '--num', '1', '--steps', '5', '--out', one]);
    expect(s.status).toBe(0);
    const before = await readGray(one);
    expect([before.width, before.height]).toEqual([32, 32]);
    const r = await expectKept(one, before.data, 32, (y) => y < 16, ['--mask', 'top']);
    expect(r.stderr).toMatch(
      /^note: --input: .*one\.png is 32x32, reduced 2x by block averaging to 16x16 for the model; the edit is put back into its 32x32 pixels$/m,
    );
  });

  it('a 28x28 input (not a multiple of 16) comes back at 28x28 with its kept pixels', async () => {
    const { file, data } = await texture(28);
    // crop pixel y lies in token row floor((2y + 1) * 16 / (2 * 28 * 4)): rows 0..13 are the top two token rows
    const r = await expectKept(file, data, 28, (y) => y < 14, ['--mask', 'top']);
    expect(r.stderr).toMatch(/^note: --input: .*texture-28\.png is 28x28, resized by area to 16x16 for the model/m);
    await expectKept(file, data, 28, (y, x) => y >= 7 && y < 21 && x >= 7 && x < 21, ['--mask', 'center', '--seed', '3']);
  });

  it("a 16x16 input (the model's size) is edited in place, without a note", async () => {
    const { file, data } = await texture(16);
    const r = await expectKept(file, data, 16, (y) => y >= 8, ['--mask', 'bottom']);
    expect(r.stderr).not.toMatch(/note:/);
  });

  it("--zoom 2 enlarges the edit by pixel repetition: the kept pixels are the input's, twice as large", async () => {
    const { file, data } = await texture(28);
    const out = path.join(tmp, 'zoomed-edit.png');
    const r = runCli(['edit', '--model', model16, '--input', file, '--mask', 'top', '--class', '3', '--steps', '5', '--zoom', '2', '--out', out]);
    expect(r.status).toBe(0);
    const edited = await readGray(out);
    expect([edited.width, edited.height]).toEqual([56, 56]);
    for (let y = 28; y < 56; y++) for (let x = 0; x < 56; x++) expect(edited.data[y * 56 + x]).toBe(data[(y >> 1) * 28 + (x >> 1)]);
  });

  it("a mask at the input's resolution: every white pixel is regenerated, with the rest of its token; the resize is reported", async () => {
    const { file, data } = await texture(28);
    const mask = Buffer.alloc(28 * 28);
    mask[3 * 28 + 10] = 255; // one white pixel in token (0, 1): 28 mask pixels over 4 tokens, 7 each
    const maskFile = path.join(tmp, 'mask28.png');
    await sharp(mask, { raw: { width: 28, height: 28, channels: 1 } })
      .png()
      .toFile(maskFile);
    const r = await expectKept(file, data, 28, (y, x) => y < 7 && x >= 7 && x < 14, ['--mask', maskFile]);
    expect(r.stdout).toContain('regenerated 1 of 16 tokens');
    expect(r.stderr).toMatch(
      /^note: --mask: .*mask28\.png is 28x28, laid over the model's 16x16 pixels \(4x4 tokens\); a token is regenerated when any white mask pixel touches it$/m,
    );
    // a mask of yet another size (20x20, over the 32x32 sample of the first test's size): the same rule
    const small = path.join(tmp, 'mask20.png');
    await sharp(Buffer.alloc(20 * 20, 255), { raw: { width: 20, height: 20, channels: 1 } })
      .png()
      .toFile(small);
    const all = runCli(['edit', '--model', model16, '--input', file, '--mask', small, '--class', '3', '--steps', '3', '--out', path.join(tmp, 'all.png')]);
    expect(all.status).toBe(0);
    expect(all.stdout).toContain('regenerated 16 of 16 tokens');
    expect(all.stderr).toMatch(/note: --mask: .*mask20\.png is 20x20, laid over the model's 16x16 pixels/);
  });
});
