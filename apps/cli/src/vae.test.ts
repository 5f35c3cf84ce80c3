/**
 * Latent-space CausalFusion end to end on tiny sizes, through the command line: a VAE folder from the tiny
 * reference VAE's graphs, a latent cache of a small image folder, a few training steps of the tiny preset
 * on it, then sample / edit decoding through the VAE.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import sharp from 'sharp';
import { runCli } from './tiny-model.test-util';

jest.setTimeout(120_000);

const REFERENCE = path.resolve(__dirname, '../../../../shared/reference/vae_tiny');
let tmp: string;
let vae: string;
let data: string;

beforeAll(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cli-vae-'));
  vae = path.join(tmp, 'vae');
  data = path.join(tmp, 'images');
  // 2 classes x 3 RGB images, 24x20 (the encoder's loader center-crops them to the VAE's 16x16)
  for (let i = 0; i < 6; i++) {
    const cls = i % 2 ? 'stripes' : 'blobs';
    fs.mkdirSync(path.join(data, cls), { recursive: true });
    const px = Buffer.alloc(24 * 20 * 3);
    for (let j = 0; j < px.length; j++) px[j] = i % 2 ? ((j / 3) % 6 < 3 ? 230 : 20) : (j * (5 + i)) % 256;
    await sharp(px, { raw: { width: 24, height: 20, channels: 3 } })
      .png()
      .toFile(path.join(data, cls, `${i}.png`));
  }
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

async function size(file: string): Promise<[number, number, number]> {
  const m = await sharp(file).metadata();
  return [m.width!, m.height!, m.channels!];
}

describe('a latent-space model through the CLI', () => {
  it('vae init, encode, train --tokenizer vae:DIR, sample, edit, decode', async () => {
    let r = runCli([
      'vae',
      'init',
      '--encoder',
      path.join(REFERENCE, 'encoder.onnx'),
      '--decoder',
      path.join(REFERENCE, 'decoder.onnx'),
      '--out',
      vae,
      '--name',
      'vae-tiny',
      '--scale',
      '0.2325',
    ]);
    expect(r.stderr).toBe('');
    expect(r.stdout).toMatch(/vae-tiny, 16x16 RGB -> 4x8x8 latents \(downsampling 2\), scale factor 0.2325/);

    const latents = path.join(tmp, 'latents.bin');
    r = runCli(['encode', '--data', data, '--vae', vae, '--out', latents, '--batch', '4', '--threads', '1']);
    expect(r.status).toBe(0);
    expect(r.stderr).toMatch(/encode \[#{20}\] 6\/6 images/);
    expect(r.stdout).toMatch(/6 images of 2 classes as 4x8x8 latents of vae-tiny \(mean and logvar, and of the flipped image\)/);

    const model = path.join(tmp, 'model');
    r = runCli([
      'train',
      '--preset',
      'tiny',
      '--tokenizer',
      `vae:${vae}`,
      '--data',
      latents,
      '--patch-size',
      '2',
      '--steps',
      '3',
      '--batch',
      '4',
      '--out',
      path.join(tmp, 'run'),
      '--export',
      model,
      '--sample-steps',
      '2',
      '--sample-ar-steps',
      '2',
      '--backend',
      'wasm',
    ]);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/16 tokens of 16 values \(latents of vae-tiny\)/);
    // the run's sample grid is decoded through the VAE: a row per class of 16x16 RGB images (2-pixel gaps)
    expect(await size(path.join(tmp, 'run', 'samples', 'step-3.png'))).toEqual([16 + 4, 2 * 16 + 3 * 2, 3]);
    const meta = JSON.parse(fs.readFileSync(path.join(model, 'meta.json'), 'utf8'));
    expect(meta.tokenizer).toEqual({ kind: 'vae', dir: vae, name: 'vae-tiny', scale: 0.2325, latentChannels: 4, latentSize: 8, imageSize: 16, patchSize: 2 });
    expect(meta.classNames).toEqual(['blobs', 'stripes']);

    const grid = path.join(tmp, 'grid.png');
    r = runCli([
      'sample',
      '--model',
      model,
      '--class',
      'stripes',
      'blobs',
      '--num',
      '3',
      '--ar-steps',
      '4',
      '--steps',
      '5',
      '--zoom',
      '1',
      '--threads',
      '1',
      '--out',
      grid,
    ]);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/6 images \(2 rows of 3; classes stripes, blobs\), 4 AR steps/);
    expect(await size(grid)).toEqual([3 * 16, 2 * 16, 3]);

    const edited = path.join(tmp, 'edit.png');
    r = runCli([
      'edit',
      '--model',
      model,
      '--input',
      path.join(data, 'stripes', '1.png'),
      '--mask',
      'top',
      '--class',
      'blobs',
      '--steps',
      '5',
      '--zoom',
      '1',
      '--out',
      edited,
    ]);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/regenerated 8 of 16 tokens/);
    // the edit goes back into the 24x20 input (center-cropped to 20x20, enlarged by area to 16x16 for the model)
    expect(r.stderr).toMatch(/note: --input: .*1\.png is 24x20, center-cropped to 20x20, resized by area to 16x16 for the model/);
    expect(await size(edited)).toEqual([24, 20, 3]);

    const decoded = path.join(tmp, 'decoded.png');
    r = runCli(['decode', '--latents', latents, '--vae', vae, '--start', '1', '--num', '3', '--flipped', '--zoom', '1', '--out', decoded]);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/images 1..3 of .*latents.bin \(blobs, blobs, stripes\)/);
    expect(await size(decoded)).toEqual([3 * 16, 16, 3]);
  });

  it('bad input is one line and exit 2', async () => {
    let r = runCli([
      'vae',
      'init',
      '--encoder',
      path.join(REFERENCE, 'decoder.onnx'),
      '--decoder',
      path.join(REFERENCE, 'decoder.onnx'),
      '--out',
      path.join(tmp, 'x'),
      '--preset',
      'sd',
    ]);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/^error: .*decoder.onnx: the input "latent" is \[N, 4, 8, 8\], not an image \[N, 3, H, W\] \(4 channels: is it the decoder/);
    r = runCli(['encode', '--data', data, '--vae', path.join(tmp, 'nowhere'), '--out', path.join(tmp, 'l.bin')]);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/^error: --vae: VAE folder .*nowhere does not exist/);
    r = runCli(['train', '--preset', 'tiny', '--tokenizer', `vae:${vae}`, '--patch-size', '2', '--out', path.join(tmp, 'run2')]);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/--data mnist is not one; encode the images once with `causalfusion encode/);
    if (fs.existsSync(path.join(tmp, 'model'))) {
      r = runCli(['sample', '--model', path.join(tmp, 'model'), '--tokenizer', `vae:${path.join(tmp, 'nowhere')}`]);
      expect(r.status).toBe(2);
      expect(r.stderr).toMatch(/^error: VAE folder .*nowhere does not exist/);
    }
  });
});
