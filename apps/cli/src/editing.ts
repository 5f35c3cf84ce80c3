/**
 * Zero-shot editing as `causalfusion edit` and the studio (`causalfusion serve`) both run it: the region to
 * regenerate (a preset or a mask image), the sampler's `edit` on the image's tokens under the new classes,
 * and each edit put back into the ORIGINAL pixels, so every kept pixel is the input's, bit for bit.
 */
import * as fs from 'fs';
import { edit, editRegion, EDIT_REGIONS, type Denoiser, type SampleOptions, type SampleResult } from '@causalfusion/sampler';
import { UsageError } from './errors';
import { DEFAULT_EDIT_CFG, parseSamplingFlags, samplerOptions, type SamplingFlags, type SamplingSettings } from './generation';
import { compositeEdit, fitToModel, readMask, sourceName, type ImageSource, type RawImage } from './images';
import type { ModelFolder } from './model-folder';

/**
 * What to regenerate, as the token grid (1 = regenerate): a preset region name, or a mask image (a file, or
 * uploaded bytes) of any size, white = regenerate. `note` hears how a mask of another size was laid over the model.
 */
export async function readEditRegion(mask: ImageSource, folder: ModelFolder, note?: (message: string) => void): Promise<Uint8Array> {
  const { imageSize, pixelsPerToken, grid } = folder.tokenizer;
  if (typeof mask === 'string' && (EDIT_REGIONS as readonly string[]).includes(mask)) return editRegion(mask, grid, grid);
  if (typeof mask !== 'string' || fs.existsSync(mask)) return readMask(mask, imageSize, pixelsPerToken, '--mask', note);
  throw new UsageError(`--mask: '${sourceName(mask)}' is neither a region (${EDIT_REGIONS.join(', ')}) nor an existing mask image`);
}

/** The sampling flags of an edit, checked against the tokens it regenerates (editing guides harder by default). */
export function parseEditFlags(
  flags: Omit<SamplingFlags, 'out'>,
  folder: ModelFolder,
  region: Uint8Array,
  maxNum?: Parameters<typeof parseSamplingFlags>[5],
): SamplingSettings {
  const regenerated = region.reduce((a, b) => a + b, 0);
  return parseSamplingFlags(flags, folder.config, regenerated, folder.tokenizer.kind === 'pixel', DEFAULT_EDIT_CFG, maxNum, folder.meta.sampling);
}

/**
 * Edit `original` (at its own resolution) once per condition: it is brought to the model's size and encoded,
 * every edit starts from those tokens, and the sampler keeps the ones outside `region` bit for bit.
 * `hooks` adds the sampler's progress, frames and cancellation.
 */
export async function runEdit(
  denoiser: Denoiser<number>,
  folder: ModelFolder,
  original: RawImage,
  region: Uint8Array,
  settings: SamplingSettings,
  conditions: number[],
  frames: boolean,
  hooks: Pick<SampleOptions<number>, 'onProgress' | 'onIntermediate' | 'signal'> = {},
): Promise<SampleResult> {
  // (A latent-space model's tokens are the VAE's posterior mean of the image, scaled.)
  const source = await folder.tokenizer.encode(fitToModel(original, folder.tokenizer.imageSize));
  const tokens = new Float32Array(conditions.length * source.length);
  for (let i = 0; i < conditions.length; i++) tokens.set(source, i * source.length);
  return edit(denoiser, { ...samplerOptions(settings, conditions, folder.tokenizer.grid, frames), tokens, region, ...hooks });
}

/**
 * The decoded edits (the model's size) put back into the original pixels: `count` images of the original's
 * size, one after the other; only the regenerated tokens' pixels differ from the original.
 */
export function compositeEdits(original: RawImage, decoded: Uint8Array, count: number, folder: ModelFolder, region: Uint8Array): Uint8Array {
  const { imageSize, channels, pixelsPerToken } = folder.tokenizer;
  const cell = original.width * original.height * channels;
  const per = imageSize * imageSize * channels;
  const out = new Uint8Array(count * cell);
  for (let i = 0; i < count; i++) {
    out.set(compositeEdit(original, decoded.subarray(i * per, (i + 1) * per), imageSize, region, pixelsPerToken), i * cell);
  }
  return out;
}
