/**
 * What `sample` and `edit` share: the sampling flags (AR steps, order, diffusion steps, sampler, CFG,
 * seed), turning them into options of @causalfusion/sampler, progress on stderr and the progress frames.
 */
import * as fs from 'fs';
import * as path from 'path';
import { Command } from 'commander';
import { createDiffusion, type GaussianDiffusion } from '@causalfusion/diffusion';
import { makeDirs, writeFileAtomic } from '@causalfusion/safetensors';
import { ORDER_NAMES, type Intermediate, type OrderName, type SampleOptions, type SampleProgress } from '@causalfusion/sampler';
import type { SamplingDefaults } from '@causalfusion/config';
import type { ModelConfig } from '@causalfusion/transformer';
import { UsageError } from './errors';
import { boundedInt, LIMITS } from './limits';
import { defaultZoom, encodeImageGrid, gridSize, writeGrid, writeImageGrid } from './images';
import { checkImageOut, checkOutDir } from './outputs';
import type { ModelFolder } from './model-folder';

/** The flags as commander hands them over (strings, parsed and checked by {@link parseSamplingFlags}). */
export interface SamplingFlags {
  model?: string;
  class?: string[];
  num: string;
  arSteps: string;
  order: string;
  /** Undefined: the model's meta.json `sampling`, else {@link FALLBACK_SAMPLING}. */
  steps?: string;
  sampler?: string;
  cfg?: string;
  cfgInterval?: string;
  seed: string;
  out: string;
  progressFrames?: string;
  zoom?: string;
  runtime?: string;
  device?: string;
  threads?: string;
  workers?: string;
  backend?: string;
  tokenizer?: string;
  /** false with --no-clip. */
  clip?: boolean;
}

/** The default CFG scale for a model trained with label dropout (one without a null class gets 1). */
export const DEFAULT_CFG = 3;
/**
 * Editing guides harder by default: the kept tokens are strong evidence for the image's old class, and the
 * new class must win over them (on the shipped model, 200 center edits read as the new class 70% of the time
 * at 3 and 79% at 5; bench/quality).
 */
export const DEFAULT_EDIT_CFG = 5;

/** Sampling defaults of a model whose meta.json names none (the flags' documented defaults). */
export const FALLBACK_SAMPLING = { steps: '50', sampler: 'ddpm' } as const;

/** Add the flags both commands take. */
export function addSamplingFlags(cmd: Command, defaults: { arSteps: string; order: string; cfg?: number; zoomHelp?: string }): Command {
  return cmd
    .option(
      '--model <dir|ckpt.pt>',
      'model folder (model.safetensors, config.json, meta.json), or an official PyTorch checkpoint (read in memory; see `causalfusion convert`); default: the shipped MNIST model',
    )
    .option('--tokenizer <pixel|vae:DIR>', "the model's tokenizer (default: as its meta.json says); vae:DIR points a latent-space model at its VAE folder")
    .option('--ar-steps <n>', 'S_eval: AR steps the tokens are generated in (1 = plain diffusion, L = one token per step)', defaults.arSteps)
    .option('--order <name>', `token order: ${ORDER_NAMES.join(', ')}`, defaults.order)
    .option(
      '--steps <spec>',
      `diffusion steps per AR step: a respacing of the 1000 steps, e.g. 50, 250 or ddim25 (default: the model's meta.json "sampling", else ${FALLBACK_SAMPLING.steps})`,
    )
    .option('--sampler <name>', `ddpm or ddim (eta 0) (default: the model's meta.json "sampling", else ${FALLBACK_SAMPLING.sampler})`)
    .option(
      '--cfg <scale>',
      `classifier-free guidance scale, >= 1 (default ${defaults.cfg === undefined ? `the model's meta.json "sampling", else ${DEFAULT_CFG}` : defaults.cfg}; 1 for a model without a null class)`,
    )
    .option('--cfg-interval <lo,hi>', 'guide only on original timesteps lo <= t < hi (default 0,1000: always)')
    .option('--seed <n>', 'seed of the noise and of the random order', '0')
    .option('--no-clip', "do not clamp the x0 estimates to [-1, 1] (clamping is on for pixel models, as ADM's clip_denoised; off for VAE latents)")
    .option('--progress-frames <dir>', 'write the image after each AR step: finished tokens and the current x0 estimate')
    .option('--zoom <n>', defaults.zoomHelp ?? 'enlarge the written images n times (nearest neighbour; default 1, or enough to reach 28 pixels; at most 16)')
    .option('--runtime <name>', 'ort (onnxruntime-node, fast) or tfjs', 'ort')
    .option('--device <name>', 'ort device: cpu or cuda (needs an onnxruntime-node with the CUDA provider)', 'cpu')
    .option('--threads <n>', 'ort: CPU threads (default: the cores, at most 4)')
    .option(
      '--workers <n>',
      'ort: onnxruntimes the batch rows are split over, one on the main thread and the others in worker threads, --threads/n threads each (default: --threads on the CPU, 1 with cuda; 1 = one onnxruntime with --threads intra-op threads)',
    )
    .option('--backend <name>', 'with --runtime tfjs: tensorflow, wasm or cpu (default: the fastest installed)');
}

/** One condition per image: each class `num` times, in the grid's row order (a row per class). */
export function classConditions(classes: number[], num: number): number[] {
  return classes.flatMap((c) => Array<number>(num).fill(c));
}

/** The images one call draws (classes x --num), against {@link LIMITS.images} (sample --out-dir: LIMITS.dirImages). */
export function checkImageCount(classes: number, num: number, limit: number = LIMITS.images, hint = 'run several calls with different --seed values'): void {
  if (classes * num > limit) {
    throw new UsageError(`--num: ${classes} classes x ${num} images = ${classes * num} images, over the limit of ${limit} per call; ${hint}`);
  }
}

export interface SamplingSettings {
  num: number;
  arSteps: number;
  order: OrderName;
  diffusion: GaussianDiffusion;
  method: 'ddpm' | 'ddim';
  cfgScale: number;
  cfgInterval: [number, number];
  seed: number;
  clipDenoised: boolean;
  zoom: number;
}

/**
 * Parse and check the shared flags against the model, before any compute starts. A flag not given takes the
 * model's own default (`recommended`: its meta.json `sampling`, measured on it), else the fallback.
 */
export function parseSamplingFlags(
  flags: Omit<SamplingFlags, 'out'>,
  config: ModelConfig,
  numTokensToGenerate: number,
  pixels = true,
  defaultCfg = DEFAULT_CFG,
  maxNum: { limit: number; hint: string } = {
    limit: LIMITS.images,
    hint: `a call draws at most ${LIMITS.images} images (classes x --num); run several calls with different --seed values`,
  },
  recommended: SamplingDefaults = {},
): SamplingSettings {
  // edit passes its own stronger CFG default; the model's recommendation is for sampling
  if (defaultCfg === DEFAULT_CFG && recommended.cfg !== undefined) defaultCfg = recommended.cfg;
  const steps = flags.steps ?? recommended.steps ?? FALLBACK_SAMPLING.steps;
  const method = flags.sampler ?? recommended.sampler ?? FALLBACK_SAMPLING.sampler;
  const num = boundedInt(flags.num, '--num', maxNum.limit, maxNum.hint);
  const zoom = flags.zoom === undefined ? defaultZoom(config.inputSize) : boundedInt(flags.zoom, '--zoom', LIMITS.zoom);
  // at most the tokens to generate (checked below, with a message that says how many there are)
  const arSteps = boundedInt(flags.arSteps, '--ar-steps', Number.MAX_SAFE_INTEGER);
  if (arSteps > numTokensToGenerate) {
    throw new UsageError(`--ar-steps: ${arSteps} AR steps for ${numTokensToGenerate} tokens to generate; use 1 to ${numTokensToGenerate}`);
  }
  if (!(ORDER_NAMES as readonly string[]).includes(flags.order)) {
    throw new UsageError(`--order: unknown order '${flags.order}'; use one of ${ORDER_NAMES.join(', ')}`);
  }
  let diffusion: GaussianDiffusion;
  try {
    diffusion = createDiffusion({ steps: 1000, schedule: 'linear', respacing: steps });
  } catch (e) {
    throw new UsageError(`--steps: ${(e as Error).message}`);
  }
  if (method !== 'ddpm' && method !== 'ddim') throw new UsageError(`--sampler: expected ddpm or ddim, got '${method}'`);

  const hasNullClass = config.classDropoutProb > 0;
  let cfgScale = hasNullClass ? defaultCfg : 1;
  if (flags.cfg !== undefined) {
    cfgScale = Number(flags.cfg);
    if (flags.cfg.trim() === '' || !(cfgScale >= 1) || !Number.isFinite(cfgScale))
      throw new UsageError(`--cfg: expected a number >= 1 (1 = off), got '${flags.cfg}'`);
    if (cfgScale !== 1 && !hasNullClass) {
      throw new UsageError('--cfg: this model was trained without label dropout (no null class), so it cannot be guided; use --cfg 1');
    }
  }
  let cfgInterval: [number, number] = [0, 1000];
  if (flags.cfgInterval !== undefined) {
    const parts = flags.cfgInterval.split(',').map((s) => Number(s.trim()));
    const [lo, hi] = parts;
    if (parts.length !== 2 || !parts.every(Number.isFinite) || !(lo >= 0 && lo <= hi && hi <= 1000)) {
      throw new UsageError(`--cfg-interval: expected lo,hi with 0 <= lo <= hi <= 1000 (original timesteps), got '${flags.cfgInterval}'`);
    }
    cfgInterval = [lo, hi];
  }
  const seed = Number(flags.seed);
  if (!/^\d+$/.test(flags.seed.trim()) || !Number.isSafeInteger(seed)) throw new UsageError(`--seed: expected a non-negative integer, got '${flags.seed}'`);
  // Pixel tokens live in [-1, 1], so an x0 estimate outside it is known to be wrong; scaled VAE latents are not bounded.
  const clipDenoised = pixels && flags.clip !== false;
  return { num, arSteps, order: flags.order as OrderName, diffusion, method, cfgScale, cfgInterval, seed, clipDenoised, zoom };
}

/** The options of `sample()` / `edit()` that come from the flags. */
export function samplerOptions(s: SamplingSettings, conditions: number[], grid: number, frames: boolean): SampleOptions<number> {
  return {
    conditions,
    arSteps: s.arSteps,
    order: s.order,
    grid: [grid, grid],
    diffusion: s.diffusion,
    method: s.method,
    cfgScale: s.cfgScale,
    cfgInterval: s.cfgInterval,
    seed: s.seed,
    clipDenoised: s.clipDenoised,
    // One frame per AR step: the x0 estimate at its last diffusion step, beside the finished tokens.
    intermediates: frames ? { every: s.diffusion.samplingTimesteps().length } : false,
  };
}

/**
 * Progress on stderr: on a terminal one line redrawn every diffusion step; otherwise (logs, pipes) a line
 * per finished AR step.
 */
export function progressReporter(label: string): (p: SampleProgress) => void {
  const started = Date.now();
  return (p) => {
    const width = 20;
    const done = ((p.arStep - 1) * p.steps + p.step) / (p.arSteps * p.steps);
    const filled = Math.round(done * width);
    const seconds = ((Date.now() - started) / 1000).toFixed(1);
    const text =
      `${label} [${'#'.repeat(filled)}${'-'.repeat(width - filled)}] AR step ${p.arStep}/${p.arSteps}, ` +
      `diffusion step ${p.step}/${p.steps} (t=${p.timestep}) ${seconds}s`;
    const arStepDone = p.step === p.steps;
    if (process.stderr.isTTY) process.stderr.write(`\r${text}\x1b[K${arStepDone && p.arStep === p.arSteps ? '\n' : ''}`);
    else if (arStepDone) process.stderr.write(`${text}\n`);
  };
}

/** Write one grid PNG per AR step (`ar-step-1.png`, ...) from the sampler's intermediates. */
export async function writeProgressFrames(dir: string, frames: Intermediate[], folder: ModelFolder, count: number, cols: number, zoom = 1): Promise<string[]> {
  makeDirs(dir);
  const width = String(frames.length).length;
  const files: string[] = [];
  for (const frame of frames) {
    const file = path.join(dir, `ar-step-${String(frame.arStep).padStart(width, '0')}.png`);
    writeFileAtomic(file, await encodeProgressFrame(frame, folder, count, cols, zoom));
    files.push(file);
  }
  return files;
}

/** One progress frame as a PNG grid: the tokens decoded by the model's tokenizer (the studio streams these). */
export async function encodeProgressFrame(frame: Intermediate, folder: ModelFolder, count: number, cols: number, zoom = 1): Promise<Buffer> {
  const { imageSize, channels } = folder.tokenizer;
  return encodeImageGrid(await folder.tokenizer.decode(frame.x0), count, cols, imageSize, imageSize, channels, zoom);
}

/** The written grid's cells when they are not the model's images as decoded (edit: the input's size). */
export interface GridOutput {
  /** The decoded images (model size) -> the cells, `width` x `height` each. */
  images(decoded: Uint8Array): Uint8Array;
  width: number;
  height: number;
  zoom: number;
}

/**
 * Check `--out` (format, place, size of the grid) and `--progress-frames` (a folder) before any work: the
 * grid holds `count` cells of `cellWidth` x `cellHeight`, `cols` a row, enlarged `zoom` times.
 */
export function checkSamplingOutputs(
  flags: Pick<SamplingFlags, 'out' | 'progressFrames'>,
  count: number,
  cols: number,
  cellWidth: number,
  cellHeight: number,
  zoom: number,
): void {
  checkImageOut(flags.out, '--out', gridSize(count, cols, cellWidth, cellHeight, zoom));
  if (flags.progressFrames !== undefined) checkOutDir(flags.progressFrames, '--progress-frames');
}

/**
 * Write what `sample` / `edit` produced: the grid (tokens decoded by the model's tokenizer: pixels, or a VAE
 * for a latent-space model) and, when asked, one frame per AR step; then release the tokenizer.
 */
export async function writeResults(
  folder: ModelFolder,
  result: { tokens: Float32Array; intermediates?: Intermediate[] },
  flags: Pick<SamplingFlags, 'out' | 'progressFrames'>,
  count: number,
  settings: Pick<SamplingSettings, 'num' | 'zoom'>,
  output?: GridOutput,
): Promise<void> {
  const { imageSize, channels } = folder.tokenizer;
  try {
    const decoded = await folder.tokenizer.decode(result.tokens);
    if (output) {
      await writeImageGrid(flags.out, output.images(decoded), count, settings.num, output.width, output.height, channels, output.zoom);
    } else await writeGrid(flags.out, decoded, count, settings.num, imageSize, channels, settings.zoom);
    if (flags.progressFrames) {
      const files = await writeProgressFrames(flags.progressFrames, result.intermediates ?? [], folder, count, settings.num, settings.zoom);
      console.log(`wrote ${files.length} progress frames (one per AR step) to ${flags.progressFrames}`);
    }
  } finally {
    await folder.tokenizer.close();
  }
}
