import * as fs from 'fs';
import * as path from 'path';
import { Command } from 'commander';
import { initBackend } from '@causalfusion/backend';
import { CanvasCodec, DEFAULT_MULTIMODAL_MODEL_DIR, loadMultimodalModel, readMultimodalFolder } from '@causalfusion/multimodal';
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
      dir ? `--model ${dir} does not exist` : `no multimodal model at ${folder} (the shipped one is not trained yet); train it with: ${MULTIMODAL_TRAIN_HINT}, or give --model DIR`,
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
    .option('--ar-steps <n>', 'AR steps S_eval (1 = plain diffusion)', '4')
    .option('--steps <n>', 'diffusion steps per AR step', '50')
    .option('--cfg <x>', 'classifier-free guidance scale (1 = off)', '2')
    .option('--seed <n>', 'seed', '0')
    .option('--zoom <n>', 'enlarge the written grid (nearest neighbour)', '2')
    .option('--out <file.png>', 'the grid to write (a row of images): .png, .jpg/.jpeg or .webp', 'generated.png')
    .action(async (flags: Record<string, string>) => {
      const folder = openMultimodalFolder(flags.model);
      const num = positiveInt('--num', flags.num, LIMITS.generateImages);
      const tokensPerImage = (folder.config.imageHeight / folder.config.patchSize) * (folder.config.imageWidth / folder.config.patchSize);
      const arSteps = positiveInt('--ar-steps', flags.arSteps, tokensPerImage);
      const steps = positiveInt('--steps', flags.steps, 1000);
      const cfg = parseNumber('--cfg', flags.cfg, (n) => n >= 1, 'a number >= 1');
      const seed = parseNumber('--seed', flags.seed, (n) => Number.isSafeInteger(n) && n >= 0, 'an integer >= 0');
      const zoom = positiveInt('--zoom', flags.zoom, LIMITS.zoom);
      checkImageOut(flags.out, '--out', { width: num * folder.config.imageWidth * zoom, height: folder.config.imageHeight * zoom });
      await initBackend({ quiet: true });
      const { model, codec } = loadMultimodalModel(folder.dir);
      try {
        let caption: Int32Array;
        try {
          caption = codec.encode(flags.prompt);
        } catch (e) {
          throw new UsageError(`--prompt: ${(e as Error).message}`);
        }
        const started = Date.now();
        const { generateImages } = await import('@causalfusion/multimodal');
        const tokens = await generateImages(model, codec, Array.from({ length: num }, () => caption), { arSteps, cfgScale: cfg, steps, seed });
        const canvas = new CanvasCodec(folder.config.imageHeight, folder.config.imageWidth, folder.config.patchSize);
        const images = canvas.decode(tokens);
        await writeRectGrid(flags.out, images, num, canvas.height, canvas.width, zoom);
        console.log(
          `wrote ${flags.out}: ${num} images for "${flags.prompt}", ${arSteps} AR steps x ${steps} steps, CFG ${cfg}, seed ${seed}, ${((Date.now() - started) / 1000).toFixed(1)}s`,
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
