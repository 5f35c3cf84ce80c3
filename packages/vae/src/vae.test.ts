import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { readVaeConfig, writeVaeConfig } from './config';
import { loadVae, samplePosterior, Vae } from './vae';
import { makeTinyVaeFolder, maxAbsDiff, readReferenceIo, REFERENCE_DIR } from './reference.test-util';

jest.setTimeout(60_000);

const io = readReferenceIo();
const f32 = (a: { data: number[] }) => Float32Array.from(a.data);
let tmp: string;
let dir: string;
let vae: Vae;

beforeAll(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'vae-'));
  dir = path.join(tmp, 'tiny');
  await makeTinyVaeFolder(dir);
  vae = await loadVae(dir, { threads: 1 });
});
afterAll(async () => {
  await vae?.release();
  fs.rmSync(tmp, { recursive: true, force: true });
});

describe('the tiny reference VAE matches PyTorch to 1e-4', () => {
  it('vae.json holds the geometry read off the graphs', () => {
    expect(readVaeConfig(dir)).toEqual({
      format: 'causalfusion-vae',
      name: 'vae-tiny-reference',
      scaleFactor: 0.2325,
      latentChannels: 4,
      downsample: 2,
      imageSize: 16,
      inputRange: [-1, 1],
    });
    expect([vae.latentSize, vae.latentLength]).toEqual([8, 256]);
  });

  it('encodes: mean, clamped logvar, the sample for the given eps, times the scale factor', async () => {
    const p = await vae.encode(f32(io.encoder.input_image));
    expect(p.shape).toEqual([2, 4, 8, 8]);
    const diffs = {
      mean: maxAbsDiff(p.mean, io.encoder.mean.data),
      logvar: maxAbsDiff(p.logvar, io.encoder.logvar.data),
    };
    const z = samplePosterior(p, f32(io.encoder.eps));
    const sample = maxAbsDiff(z, io.encoder.posterior_sample.data);
    const scaled = maxAbsDiff(
      z.map((v) => v * vae.scaleFactor),
      io.encoder['posterior_sample_times_0.2325'].data,
    );
    console.log(
      `vae_tiny parity (max |diff|): mean ${diffs.mean.toExponential(2)}, logvar ${diffs.logvar.toExponential(2)}, sample ${sample.toExponential(2)}, scaled ${scaled.toExponential(2)}`,
    );
    for (const d of [diffs.mean, diffs.logvar, sample, scaled]) expect(d).toBeLessThan(1e-4);
  });

  it('gives each image the posterior it gets alone (N = 1 and in chunks)', async () => {
    const x = f32(io.encoder.input_image);
    const chunked = await loadVae(dir, { threads: 1, batchSize: 1 });
    try {
      const p = await chunked.encode(x);
      expect(maxAbsDiff(p.mean, io.encoder.mean.data)).toBeLessThan(1e-4);
      const second = await vae.encode(x.subarray(768));
      expect(maxAbsDiff(second.mean, io.encoder.mean.data.slice(256))).toBeLessThan(1e-4);
    } finally {
      await chunked.release();
    }
  });

  it('decodes latents, and decodes the encoder mean as PyTorch does', async () => {
    const image = await vae.decode(f32(io.decoder.input_latent), [2, 4, 8, 8]);
    const d = maxAbsDiff(image, io.decoder.image.data);
    const mean = (await vae.encode(f32(io.encoder.input_image))).mean;
    const r = maxAbsDiff(await vae.decode(mean), io.roundtrip.decode_of_encoder_mean.data);
    console.log(`vae_tiny parity (max |diff|): decode ${d.toExponential(2)}, decode(encode mean) ${r.toExponential(2)}`);
    expect(d).toBeLessThan(1e-4);
    expect(r).toBeLessThan(1e-4);
  });

  it('samples with a seed: the same seed gives the same z, another seed another', async () => {
    const p = await vae.encode(f32(io.encoder.input_image));
    const a = samplePosterior(p, 7);
    expect(samplePosterior(p, 7)).toEqual(a);
    expect(maxAbsDiff(samplePosterior(p, 8), a)).toBeGreaterThan(0.01);
  });
});

describe('bad input is a clear error', () => {
  it('a latent of the wrong channel count, an image of the wrong size', async () => {
    await expect(vae.decode(new Float32Array(3 * 8 * 8), [1, 3, 8, 8])).rejects.toThrow(
      /latents of shape \[1, 3, 8, 8\] do not fit this VAE \(vae-tiny-reference\): it decodes \[N, 4, 8, 8\]/,
    );
    await expect(vae.decode(new Float32Array(100))).rejects.toThrow(/100 values are not a whole number of \[4, 8, 8\] latents/);
    await expect(vae.encode(new Float32Array(3 * 8 * 8))).rejects.toThrow(/not a whole number of 16x16 RGB images/);
  });

  it('an encoder whose input is not an image (the decoder in its place)', async () => {
    const swapped = path.join(tmp, 'swapped');
    fs.mkdirSync(swapped);
    fs.copyFileSync(path.join(REFERENCE_DIR, 'decoder.onnx'), path.join(swapped, 'encoder.onnx'));
    fs.copyFileSync(path.join(REFERENCE_DIR, 'decoder.onnx'), path.join(swapped, 'decoder.onnx'));
    writeVaeConfig(swapped, { name: 'x', scaleFactor: 1, latentChannels: 4, downsample: 2, imageSize: 16 });
    await expect(loadVae(swapped)).rejects.toThrow(
      /encoder\.onnx: the input "latent" is \[N, 4, 8, 8\], not an image \[N, 3, H, W\] \(4 channels: is it the decoder/,
    );
  });

  it('vae.json that disagrees with the graphs, a missing vae.json, a file that is not ONNX', async () => {
    const wrong = path.join(tmp, 'wrong');
    await makeTinyVaeFolder(wrong);
    writeVaeConfig(wrong, { name: 'x', scaleFactor: 0.18215, latentChannels: 16, downsample: 4, imageSize: 16 });
    await expect(loadVae(wrong)).rejects.toThrow(
      /the ONNX graphs do not match vae.json: they have 4 latent channels \(vae.json: 16\), 8-wide latents \(vae.json: 4 = 16 \/ 4\)/,
    );
    fs.rmSync(path.join(wrong, 'vae.json'));
    await expect(loadVae(wrong)).rejects.toThrow(/vae.json is missing/);
    await makeTinyVaeFolder(wrong);
    fs.writeFileSync(path.join(wrong, 'decoder.onnx'), 'not a graph');
    await expect(loadVae(wrong)).rejects.toThrow(/decoder.onnx: onnxruntime cannot load it as the VAE decoder/);
  });
});
