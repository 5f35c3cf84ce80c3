import * as fs from 'fs';
import * as path from 'path';
import { Command } from 'commander';
import { initBackend } from '@causalfusion/backend';
import {
  CanvasCodec,
  DEFAULT_MULTIMODAL_MODEL_DIR,
  generateImages,
  loadMultimodalModel,
  modelSampling,
  readMultimodalFolder,
  type CaptionCodec,
  type GenerateImageOptions,
  type MultimodalModel,
} from '@causalfusion/multimodal';
import { UsageError } from '../errors';
import { writeImageGrid } from '../images';
import { LIMITS } from '../limits';
import { checkImageOut } from '../outputs';

/** The command that trains and exports the shipped multimodal model (packages/multimodal/README.md). */
export const MULTIMODAL_TRAIN_HINT =
  'pnpm cf train --task multimodal --preset multimodal --out runs/multimodal --export packages/multimodal/assets/multimodal-model';

/** A multimodal model folder's JSON, checked before any backend starts; one-line errors. */
export function openMultimodalFolder(dir: string | undefined) {
  const folder = path.resolve(dir ?? DEFAULT_MULTIMODAL_MODEL_DIR);
  if (!fs.existsSync(folder)) {
    throw new UsageError(
      dir
        ? `--model ${dir} does not exist`
        : `no multimodal model at ${folder} (the shipped one is not trained yet); train it with: ${MULTIMODAL_TRAIN_HINT}, or give --model DIR`,
    );
  }
  try {
    return { dir: folder, ...readMultimodalFolder(folder) };
  } catch (e) {
    throw new UsageError((e as Error).message.split('\n')[0]);
  }
}

export function positiveInt(flag: string, raw: string, max = Infinity): number {
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1 || n > max) throw new UsageError(`${flag} must be an integer from 1${max < Infinity ? ` to ${max}` : ''}, got "${raw}"`);
  return n;
}

export function parseNumber(flag: string, raw: string, ok: (n: number) => boolean, what: string): number {
  const n = Number(raw);
  if (raw === '' || !Number.isFinite(n) || !ok(n)) throw new UsageError(`${flag} must be ${what}, got "${raw}"`);
  return n;
}

/** The settings of one `generate` call, checked against the model before anything starts. */
export interface GenerateSettings {
  num: number;
  sampler: 'ddpm' | 'ddim';
  arSteps: number;
  steps: number;
  cfg: number;
  seed: number;
  zoom: number;
}

/** `generate`'s flags as commander hands them over (strings); an absent sampling flag takes the model's default. */
export interface GenerateFlags {
  num: string;
  sampler?: string;
  arSteps?: string;
  steps?: string;
  cfg?: string;
  seed: string;
  zoom: string;
}

/**
 * Check `generate`'s count and sampling flags (one-line UsageErrors); `maxNum` bounds --num. The sampling
 * flags not given come from the model's meta.json `sampling` (measured on it), else DEFAULT_GENERATE_SAMPLING.
 */
export function parseGenerateFlags(
  flags: GenerateFlags,
  folder: ReturnType<typeof openMultimodalFolder>,
  maxNum: number = LIMITS.generateImages,
): GenerateSettings {
  const num = positiveInt('--num', flags.num, maxNum);
  const tokensPerImage = (folder.config.imageHeight / folder.config.patchSize) * (folder.config.imageWidth / folder.config.patchSize);
  const own = modelSampling(folder.meta);
  if (flags.arSteps === undefined && own.arSteps > tokensPerImage)
    throw new UsageError(
      `${folder.dir}/meta.json: "sampling.arSteps" ${own.arSteps} is more than the model's ${tokensPerImage} image tokens; fix it or pass --ar-steps`,
    );
  const sampler = flags.sampler ?? own.sampler;
  if (sampler !== 'ddpm' && sampler !== 'ddim') throw new UsageError(`--sampler must be ddpm or ddim, got "${sampler}"`);
  return {
    num,
    sampler,
    arSteps: positiveInt('--ar-steps', flags.arSteps ?? String(own.arSteps), tokensPerImage),
    steps: positiveInt('--steps', flags.steps ?? String(own.steps), 1000),
    cfg: parseNumber('--cfg', flags.cfg ?? String(own.cfg), (n) => n >= 1, 'a number >= 1'),
    seed: parseNumber('--seed', flags.seed, (n) => Number.isSafeInteger(n) && n >= 0, 'an integer >= 0'),
    zoom: positiveInt('--zoom', flags.zoom, LIMITS.zoom),
  };
}

/** A prompt as the model's caption ids, or a one-line UsageError (a word the model does not know, too long). */
export function encodePrompt(codec: CaptionCodec, prompt: string): Int32Array {
  try {
    return codec.encode(prompt);
  } catch (e) {
    throw new UsageError(`--prompt: ${(e as Error).message}`);
  }
}

/**
 * `num` images for one prompt: gray canvases (height x width each, one after the other). `hooks` hears each
 * AR step's frame (decoded the same way), the diffusion steps, and can cancel.
 */
export async function generateCanvases(
  model: MultimodalModel,
  codec: CaptionCodec,
  caption: Int32Array,
  s: GenerateSettings,
  hooks: { onArStep?: (images: Uint8Array, arStep: number) => void } & Pick<GenerateImageOptions, 'onProgress' | 'signal'> = {},
): Promise<Uint8Array> {
  const { imageHeight, imageWidth, patchSize } = model.config;
  const canvas = new CanvasCodec(imageHeight, imageWidth, patchSize);
  const onArStep = hooks.onArStep;
  const tokens = await generateImages(
    model,
    codec,
    Array.from({ length: s.num }, () => caption),
    {
      arSteps: s.arSteps,
      cfgScale: s.cfg,
      steps: s.steps,
      sampler: s.sampler,
      seed: s.seed,
      onProgress: hooks.onProgress,
      signal: hooks.signal,
      onArStep: onArStep && ((frame) => onArStep(canvas.decode(frame.x0), frame.arStep)),
    },
  );
  return canvas.decode(tokens);
}

/**
 * `causalfusion generate --prompt "..."`: text-to-image with the multimodal model: the caption is the
 * condition, the image is generated with S_eval AR steps (each a diffusion loop) and CFG against the null caption.
 */
export function registerGenerate(program: Command): void {
  program
    .command('generate')
    .description('text-to-image with a multimodal model: --prompt "a large 3 to the left of a small 8" --out grid.png')
    .requiredOption('--prompt <text>', 'the caption (words the model knows: see its meta.json)')
    .option('--model <dir>', 'multimodal model folder (default: the shipped one)')
    .option('--num <n>', 'images to generate', '4')
    .option('--sampler <name>', "ddpm (ancestral) or ddim (deterministic; default: the model's meta.json sampling, else ddpm)")
    .option('--ar-steps <n>', "AR steps S_eval (1 = plain diffusion; default: the model's meta.json sampling, else 4)")
    .option('--steps <n>', "diffusion steps per AR step (default: the model's, else 50)")
    .option('--cfg <x>', "classifier-free guidance scale (1 = off; default: the model's, else 2)")
    .option('--seed <n>', 'seed', '0')
    .option('--zoom <n>', 'enlarge the written grid (nearest neighbour)', '2')
    .option('--out <file.png>', 'the grid to write (a row of images): .png, .jpg/.jpeg or .webp', 'generated.png')
    .action(async (flags: GenerateFlags & { model?: string; prompt: string; out: string }) => {
      const folder = openMultimodalFolder(flags.model);
      const s = parseGenerateFlags(flags, folder);
      const { imageHeight, imageWidth } = folder.config;
      checkImageOut(flags.out, '--out', { width: s.num * imageWidth * s.zoom, height: imageHeight * s.zoom });
      await initBackend({ quiet: true });
      const { model, codec } = loadMultimodalModel(folder.dir);
      try {
        const caption = encodePrompt(codec, flags.prompt);
        const started = Date.now();
        const images = await generateCanvases(model, codec, caption, s);
        await writeRectGrid(flags.out, images, s.num, imageHeight, imageWidth, s.zoom);
        console.log(
          `wrote ${flags.out}: ${s.num} images for "${flags.prompt}", ${s.arSteps} AR steps x ${s.steps} ${s.sampler.toUpperCase()} steps, CFG ${s.cfg}, seed ${s.seed}, ${((Date.now() - started) / 1000).toFixed(1)}s`,
        );
      } finally {
        model.dispose();
      }
    });
}

/** Rectangular images (height x width gray) side by side, as one image (PNG, JPEG or WebP, as `file` names). */
export async function writeRectGrid(file: string, images: Uint8Array, count: number, height: number, width: number, zoom: number): Promise<void> {
  await writeImageGrid(file, images, count, count, width, height, 1, zoom);
}
