/** Test helpers: the tiny reference VAE (../shared/reference/vae_tiny) as a VAE folder, and its PyTorch I/O. */
import * as fs from 'fs';
import * as path from 'path';
import { initVaeFolder } from './vae';

export const REFERENCE_DIR = path.resolve(__dirname, '../../../../shared/reference/vae_tiny');

interface Array4 {
  shape: number[];
  data: number[];
}

export interface ReferenceIo {
  encoder: Record<'input_image' | 'moments' | 'mean' | 'logvar' | 'eps' | 'posterior_sample' | 'posterior_sample_times_0.2325', Array4>;
  decoder: Record<'input_latent' | 'image', Array4>;
  roundtrip: Record<'decode_of_encoder_mean', Array4>;
}

export function readReferenceIo(): ReferenceIo {
  return JSON.parse(fs.readFileSync(path.join(REFERENCE_DIR, 'io.json'), 'utf8'));
}

/** Copy the reference graphs into `dir` and write its vae.json (MAR's scale factor, as the reference uses). */
export function makeTinyVaeFolder(dir: string) {
  return initVaeFolder({
    dir,
    encoder: path.join(REFERENCE_DIR, 'encoder.onnx'),
    decoder: path.join(REFERENCE_DIR, 'decoder.onnx'),
    name: 'vae-tiny-reference',
    scaleFactor: 0.2325,
  });
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}
