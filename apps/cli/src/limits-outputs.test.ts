/**
 * Issue 19 parts 3 and 5: every count has a documented maximum and an oversized request is refused up
 * front; every output path is checked before the work starts (one line, exit 2, nothing left behind), and
 * images are written in the format their extension names.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import sharp from 'sharp';
import { readGray, runCli, writeTinyModel } from './tiny-model.test-util';

jest.setTimeout(120_000);

let tmp: string;
let model: string;
let aFile: string;
let aFolder: string;

beforeAll(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cli-limits-'));
  model = path.join(tmp, 'model');
  await writeTinyModel(model);
  aFile = path.join(tmp, 'a-file.txt');
  fs.writeFileSync(aFile, 'not a folder');
  aFolder = path.join(tmp, 'a-folder');
  fs.mkdirSync(aFolder);
  await sharp(Buffer.alloc(28 * 28, 100), { raw: { width: 28, height: 28, channels: 1 } })
    .png()
    .toFile(path.join(tmp, 'in.png'));
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** Everything under tmp, to see that a refused command left nothing behind. */
function listing(): string[] {
  return fs.readdirSync(tmp, { recursive: true }).map(String).sort();
}

/** Each case: exit 2, one line on stderr matching `message`, no stack, nothing written, and quickly. */
function expectRefused(cases: [string[], RegExp][]): void {
  for (const [args, message] of cases) {
    const before = listing();
    const started = Date.now();
    const r = runCli(args);
    const seconds = (Date.now() - started) / 1000;
    expect({ args, stderr: r.stderr.trim() }).toEqual({ args, stderr: expect.stringMatching(message) });
    expect({ args, lines: r.stderr.trim().split('\n').length, status: r.status }).toEqual({ args, lines: 1, status: 2 });
    expect(r.stdout).toBe('');
    expect(listing()).toEqual(before);
    expect(seconds).toBeLessThan(20); // refused up front: no sampling, no allocation
  }
}

describe('limits: oversized counts are refused up front with the limit in the message', () => {
  it('sample and edit', () => {
    const sample = ['sample', '--model', model, '--out', path.join(tmp, 'x.png')];
    const input = path.join(tmp, 'in.png');
    expectRefused([
      [
        [...sample, '--class', '7', '--num', '100000000'],
        /^error: --num: 100000000 is over the limit of 1024; a call draws at most 1024 images \(classes x --num\)/,
      ],
      [
        [...sample, '--class', '0,1,2', '--num', '400'],
        /^error: --num: 3 classes x 400 images = 1200 images, over the limit of 1024 per call; run several calls/,
      ],
      [[...sample, '--num', '200'], /^error: --num: 10 classes x 200 images = 2000 images, over the limit of 1024 per call/],
      [[...sample, '--zoom', '17'], /^error: --zoom: 17 is over the limit of 16$/],
      [[...sample, '--threads', '65'], /^error: --threads: 65 is over the limit of 64$/],
      [[...sample, '--workers', '100000'], /^error: --workers: 100000 is over the limit of 64$/],
      [[...sample, '--steps', '100000000'], /^error: --steps: .*ask for at most 1000$/],
      [[...sample, '--ar-steps', '100000000'], /^error: --ar-steps: 100000000 AR steps for 16 tokens to generate; use 1 to 16$/],
      [
        [...sample, '--class', '7', '--num', '1024', '--zoom', '16'],
        /^error: --out: the image would be 458752x448 pixels; PNG holds at most 65535 a side; ask for fewer images or a smaller --zoom$/,
      ],
      [
        [...sample, '--class', '7', '--num', '700', '--out', path.join(tmp, 'x.webp')],
        /^error: --out: the image would be 19600x28 pixels; WEBP holds at most 16383 a side/,
      ],
      [
        ['edit', '--model', model, '--input', input, '--class', '3', '--num', '2000', '--out', path.join(tmp, 'e.png')],
        /^error: --num: 2000 is over the limit of 1024/,
      ],
    ]);
  });

  it('decode, encode, eval fid, vae init', () => {
    const missing = path.join(tmp, 'missing');
    expectRefused([
      [['decode', '--latents', missing, '--vae', missing, '--num', '5000'], /^error: --num: 5000 is over the limit of 1024$/],
      [['decode', '--latents', missing, '--vae', missing, '--zoom', '99'], /^error: --zoom: 99 is over the limit of 16$/],
      [
        ['encode', '--data', missing, '--vae', missing, '--out', path.join(tmp, 'l.bin'), '--batch', '5000'],
        /^error: --batch: 5000 is over the limit of 1024$/,
      ],
      [
        ['encode', '--data', missing, '--vae', missing, '--out', path.join(tmp, 'l.bin'), '--threads', '1000'],
        /^error: --threads: 1000 is over the limit of 64$/,
      ],
      [['eval', 'fid', '--real', missing, '--fake', missing, '--batch-size', '100000000'], /^error: --batch-size: 100000000 is over the limit of 1024$/],
      [
        ['vae', 'init', '--encoder', missing, '--decoder', missing, '--out', path.join(tmp, 'v'), '--name', 'x', '--scale', '1', '--image-size', '100000'],
        /^error: --image-size: 100000 is over the limit of 4096$/,
      ],
    ]);
  });
});

describe('output paths are checked before the work: one line, exit 2, nothing written', () => {
  it('sample, edit: under a file, an existing folder, an unwritable place, an unknown format', () => {
    const sample = ['sample', '--model', model, '--class', '7', '--num', '1', '--steps', '2'];
    expectRefused([
      [
        [...sample, '--out', path.join(aFile, 'x.png')],
        /^error: --out: cannot write .*a-file\.txt\/x\.png: .*a-file\.txt is a file, not a folder; choose another place$/,
      ],
      [[...sample, '--out', path.join(aFile, 'sub', 'x.png')], /^error: --out: cannot write .*: .*a-file\.txt is a file, not a folder/],
      [[...sample, '--out', aFolder], /^error: --out: .*a-folder is a folder; give a file name such as .*a-folder\/image\.png$/],
      [
        [...sample, '--out', '/proc/causalfusion-test/x.png'],
        /^error: --out: cannot write \/proc\/causalfusion-test\/x\.png: cannot create folders in \/proc \(\w+\); choose another place$/,
      ],
      [[...sample, '--out', '/proc/x.png'], /^error: --out: cannot write \/proc\/x\.png: cannot write files in \/proc \(\w+\); choose another place$/],
      [
        [...sample, '--out', path.join(tmp, 'x.gif')],
        /^error: --out: cannot write \.gif images \(.*x\.gif\); use a name ending in \.png, \.jpg, \.jpeg or \.webp$/,
      ],
      [
        [...sample, '--out', path.join(tmp, 'samples')],
        /^error: --out: .*samples has no image extension; use a name ending in \.png, \.jpg, \.jpeg or \.webp$/,
      ],
      [
        [...sample, '--out', path.join(tmp, 'x.png'), '--progress-frames', aFile],
        /^error: --progress-frames: .*a-file\.txt is a file, not a folder; give a folder name$/,
      ],
    ]);
  });

  it('edit: --out is checked before the edit', () => {
    const input = path.join(tmp, 'in.png');
    const edit = ['edit', '--model', model, '--input', input, '--class', '3', '--steps', '2'];
    expectRefused([
      [[...edit, '--out', aFolder], /^error: --out: .*a-folder is a folder; give a file name/],
      [[...edit, '--out', path.join(aFile, 'e.png')], /^error: --out: .*a-file\.txt is a file, not a folder/],
      [[...edit, '--out', path.join(tmp, 'e.bmp')], /^error: --out: cannot write \.bmp images/],
    ]);
  });

  it('eval fid --save-stats, export, encode, decode, vae init, train', () => {
    const missing = path.join(tmp, 'missing');
    expectRefused([
      [
        ['eval', 'fid', '--real', aFolder, '--save-stats', path.join(aFile, 's.npz')],
        /^error: --save-stats: cannot write .*: .*a-file\.txt is a file, not a folder/,
      ],
      [['eval', 'fid', '--real', aFolder, '--save-stats', aFolder], /^error: --save-stats: .*a-folder must end in \.npz/],
      [['eval', 'fid', '--real', aFolder, '--save-stats', path.join(aFolder, 'x.npz', '/')], /^error: --save-stats: /],
      [['export', 'model', '--run', missing, '--out', aFile], /^error: --out: .*a-file\.txt is a file, not a folder; give a folder name$/],
      [
        ['export', 'onnx', '--model', model, '--out', '/proc/causalfusion-test'],
        /^error: --out: cannot write \/proc\/causalfusion-test: cannot create folders in \/proc/,
      ],
      [['encode', '--data', missing, '--vae', missing, '--out', aFolder], /^error: --out: .*a-folder is a folder; give a file name such as .*latents\.bin$/],
      [['decode', '--latents', missing, '--vae', missing, '--out', path.join(tmp, 'd.tiff')], /^error: --out: cannot write \.tiff images/],
      [['decode', '--latents', missing, '--vae', missing, '--out', path.join(aFile, 'd.png')], /^error: --out: .*a-file\.txt is a file, not a folder/],
      [
        ['vae', 'init', '--encoder', missing, '--decoder', missing, '--name', 'x', '--scale', '1', '--out', aFile],
        /^error: --out: .*a-file\.txt is a file, not a folder/,
      ],
      [['train', '--out', '/proc/causalfusion-test', '--steps', '1'], /^error: --out: cannot write \/proc\/causalfusion-test: cannot create folders in \/proc/],
      [['train', '--out', path.join(tmp, 'run'), '--export', path.join(aFile, 'm'), '--steps', '1'], /^error: --export: .*a-file\.txt is a file, not a folder/],
    ]);
  });

  it('--out x.jpg writes JPEG and x.webp lossless WebP (the same pixels as the PNG)', async () => {
    const sample = ['sample', '--model', model, '--class', '7', '--num', '2', '--steps', '2', '--zoom', '1'];
    const files = { png: path.join(tmp, 's.png'), jpeg: path.join(tmp, 's.JPG'), webp: path.join(tmp, 'sub', 's.webp') };
    for (const file of Object.values(files)) {
      const r = runCli([...sample, '--out', file]);
      expect({ status: r.status, error: r.status ? r.stderr : '' }).toEqual({ status: 0, error: '' });
    }
    for (const [format, file] of Object.entries(files)) {
      const meta = await sharp(file).metadata();
      expect([meta.format, meta.width, meta.height]).toEqual([format, 56, 28]);
    }
    expect(fs.readFileSync(files.jpeg).subarray(0, 3)).toEqual(Buffer.from([0xff, 0xd8, 0xff]));
    const [png, webp] = await Promise.all([readGray(files.png), readGray(files.webp)]);
    expect(webp.data.equals(png.data)).toBe(true);
  });
});
