/**
 * A VAE folder: `encoder.onnx`, `decoder.onnx` and `vae.json`, which says what the graphs cannot: the
 * VAE's name, the latent scale factor of the diffusion model, and the geometry (image size, latent channels,
 * downsampling factor) the graphs were exported for.
 */
import * as fs from 'fs';
import * as path from 'path';
import { makeDirs, writeFileAtomic } from '@causalfusion/safetensors';

export const VAE_CONFIG_FILE = 'vae.json';
export const ENCODER_FILE = 'encoder.onnx';
export const DECODER_FILE = 'decoder.onnx';

export interface VaeConfig {
  format: 'causalfusion-vae';
  /** Recorded in latent caches and model folders, so latents of one VAE are never decoded by another. */
  name: string;
  /** Training multiplies a posterior sample by it; decoding divides by it (0.2325 MAR, 0.18215 SD). */
  scaleFactor: number;
  latentChannels: number;
  /** Image side / latent side (16 MAR, 8 SD, 2 the tiny reference). */
  downsample: number;
  /** Side of the square RGB images the encoder takes. */
  imageSize: number;
  /** The pixel range the encoder takes and the decoder returns. */
  inputRange: [number, number];
}

/**
 * The two published VAEs the paper uses. The scale factors are the official code's: MAR's train.py uses
 * 0.2325 for its KL-16 VAE; Stable Diffusion's VAE (kl-f8) uses 0.18215.
 */
export const VAE_PRESETS = {
  mar: { name: 'mar-kl16', scaleFactor: 0.2325, latentChannels: 16, downsample: 16, imageSize: 256 },
  sd: { name: 'sd-kl-f8', scaleFactor: 0.18215, latentChannels: 4, downsample: 8, imageSize: 256 },
} as const;
export type VaePresetName = keyof typeof VAE_PRESETS;

/** Side of the latent of an image (imageSize / downsample). */
export function latentSizeOf(config: Pick<VaeConfig, 'imageSize' | 'downsample'>): number {
  return config.imageSize / config.downsample;
}

function positiveInt(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= 1;
}

/** Check a parsed vae.json field by field; `source` names the file in the Error. */
export function parseVaeConfig(json: unknown, source = VAE_CONFIG_FILE): VaeConfig {
  const c = json as Partial<VaeConfig> | null;
  if (c === null || typeof c !== 'object' || Array.isArray(c)) throw new Error(`${source}: expected a JSON object`);
  if (c.format !== 'causalfusion-vae') throw new Error(`${source}: "format" must be "causalfusion-vae", got ${JSON.stringify(c.format)}`);
  if (typeof c.name !== 'string' || c.name === '') throw new Error(`${source}: "name" must be a non-empty string`);
  if (typeof c.scaleFactor !== 'number' || !(c.scaleFactor > 0) || !Number.isFinite(c.scaleFactor)) {
    throw new Error(`${source}: "scaleFactor" must be a positive number (0.2325 for MAR's VAE, 0.18215 for SD's), got ${JSON.stringify(c.scaleFactor)}`);
  }
  for (const k of ['latentChannels', 'downsample', 'imageSize'] as const) {
    if (!positiveInt(c[k])) throw new Error(`${source}: "${k}" must be a positive integer, got ${JSON.stringify(c[k])}`);
  }
  if (c.imageSize! % c.downsample! !== 0) throw new Error(`${source}: downsample ${c.downsample} does not divide imageSize ${c.imageSize}`);
  const range = c.inputRange ?? [-1, 1];
  if (!Array.isArray(range) || range[0] !== -1 || range[1] !== 1) {
    throw new Error(`${source}: "inputRange" must be [-1, 1] (the KL-VAEs' convention), got ${JSON.stringify(range)}`);
  }
  return { ...(c as VaeConfig), inputRange: [-1, 1] };
}

/** Read and check `dir/vae.json`. */
export function readVaeConfig(dir: string): VaeConfig {
  const file = path.join(dir, VAE_CONFIG_FILE);
  if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) {
    throw new Error(`VAE folder ${dir} does not exist; a VAE folder holds ${ENCODER_FILE}, ${DECODER_FILE} and ${VAE_CONFIG_FILE}`);
  }
  if (!fs.existsSync(file)) {
    throw new Error(
      `${file} is missing; write it with \`causalfusion vae init --dir ${dir} ...\` (a VAE folder holds ${ENCODER_FILE}, ${DECODER_FILE} and ${VAE_CONFIG_FILE})`,
    );
  }
  let json: unknown;
  try {
    json = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    throw new Error(`${file} is not valid JSON (${(e as Error).message})`);
  }
  return parseVaeConfig(json, file);
}

/** Write `dir/vae.json` (atomically) after checking it. */
export function writeVaeConfig(dir: string, config: Omit<VaeConfig, 'format' | 'inputRange'> & Partial<VaeConfig>): VaeConfig {
  const checked = parseVaeConfig({ format: 'causalfusion-vae', inputRange: [-1, 1], ...config }, path.join(dir, VAE_CONFIG_FILE));
  const ordered: VaeConfig = {
    format: checked.format,
    name: checked.name,
    scaleFactor: checked.scaleFactor,
    latentChannels: checked.latentChannels,
    downsample: checked.downsample,
    imageSize: checked.imageSize,
    inputRange: checked.inputRange,
  };
  makeDirs(dir);
  writeFileAtomic(path.join(dir, VAE_CONFIG_FILE), JSON.stringify(ordered, null, 2) + '\n');
  return ordered;
}
