import { Command } from 'commander';
import { initBackend } from '@causalfusion/backend';
import { CanvasCodec, generateCaptions, loadMultimodalModel, type CaptionCodec, type CaptionOptions, type MultimodalModel } from '@causalfusion/multimodal';
import { UsageError } from '../errors';
import { boundedInt, LIMITS } from '../limits';
import { readRaw, resizeArea, sourceName, type ImageSource } from '../images';
import { openMultimodalFolder, parseNumber } from './generate';

/**
 * What `caption --input` accepts, read as gray: the model's canvas (e.g. 32 wide x 16 high), or a row of
 * canvases side by side (what `generate` writes), either enlarged by an integer zoom (generate's --zoom):
 * the zoom is the image's height over the canvas height, the cells are its width over zoom x canvas width.
 * Each cell comes back at the canvas size, reduced by block averaging. Anything else is a one-line error.
 */
export async function readCaptionInput(source: ImageSource, H: number, W: number): Promise<{ cells: Uint8Array[]; zoom: number }> {
  const file = sourceName(source);
  const { data, ...info } = await readRaw(source, 1, '--input');
  const zoom = info.height / H;
  const count = info.width / (zoom * W);
  if (!Number.isInteger(zoom) || zoom < 1 || !Number.isInteger(count) || count < 1) {
    throw new UsageError(
      `--input: ${file} is ${info.width}x${info.height}; this model captions ${W}x${H} images (width x height), ` +
        `a row of them side by side (as generate writes), or either enlarged by an integer zoom`,
    );
  }
  if (count > LIMITS.captionCells) {
    throw new UsageError(`--input: ${file} holds ${count} images, over the limit of ${LIMITS.captionCells} per call; caption a part of it`);
  }
  const gray = { data: new Uint8Array(H * zoom * W * zoom), width: W * zoom, height: H * zoom, channels: 1 };
  const cells: Uint8Array[] = [];
  for (let n = 0; n < count; n++) {
    for (let y = 0; y < gray.height; y++) for (let x = 0; x < gray.width; x++) gray.data[y * gray.width + x] = data[y * info.width + n * gray.width + x];
    cells.push(resizeArea(gray, W, H));
  }
  return { cells, zoom };
}

/** `caption`'s flags as commander hands them over. */
export interface CaptionFlags {
  greedy?: boolean;
  topK?: string;
  topP?: string;
  temperature?: string;
  num: string;
  seed: string;
}

/** Check `caption`'s decoding flags: greedy unless a sampling flag is given; one-line UsageErrors. */
export function parseCaptionFlags(flags: CaptionFlags): { options: CaptionOptions; num: number } {
  const sampling = flags.topK !== undefined || flags.topP !== undefined || flags.temperature !== undefined;
  if (flags.greedy && sampling) throw new UsageError('--greedy cannot be combined with --top-k / --top-p / --temperature');
  const options = {
    greedy: !sampling,
    topK: flags.topK !== undefined ? parseNumber('--top-k', flags.topK, (n) => Number.isInteger(n) && n >= 1, 'an integer >= 1') : undefined,
    topP: flags.topP !== undefined ? parseNumber('--top-p', flags.topP, (n) => n > 0 && n <= 1, 'in (0, 1]') : undefined,
    temperature: flags.temperature !== undefined ? parseNumber('--temperature', flags.temperature, (n) => n > 0, 'a number > 0') : undefined,
    seed: parseNumber('--seed', flags.seed, (n) => Number.isSafeInteger(n) && n >= 0, 'an integer >= 0'),
  };
  return { options, num: boundedInt(flags.num, '--num', LIMITS.captions) };
}

/**
 * `num` captions of each cell (gray canvases of the model's size). Each cell is captioned on its own, with
 * the same seed, so a cell's captions do not depend on its neighbours.
 */
export function captionCells(model: MultimodalModel, codec: CaptionCodec, cells: Uint8Array[], num: number, options: CaptionOptions): string[][] {
  const { imageHeight: H, imageWidth: W, patchSize } = model.config;
  const canvas = new CanvasCodec(H, W, patchSize);
  return cells.map((pixels) => {
    const tokens = canvas.encode(pixels);
    const batch = new Float32Array(num * tokens.length);
    for (let i = 0; i < num; i++) batch.set(tokens, i * tokens.length);
    return generateCaptions(model, codec, batch, num, options).texts;
  });
}

/**
 * `causalfusion caption --input image.png`: the image goes first as clean context, the caption is decoded
 * token by token over the KV cache (greedy, or sampled with --top-k / --top-p / --temperature, seeded).
 * The image is the model's canvas (e.g. 32x16), or a row of them (generate's grid; one caption per cell,
 * printed as `cell <i>: ...`, cells counted from 0, left to right), either at an integer zoom.
 */
export function registerCaption(program: Command): void {
  program
    .command('caption')
    .description('caption an image with a multimodal model: --input image.png [--greedy | --top-k K --top-p P --temperature T]')
    .requiredOption(
      '--input <file>',
      "the image: the model's canvas size (e.g. 32 wide x 16 high; gray or RGB), a row of them as generate writes (one caption per cell), either at an integer zoom",
    )
    .option('--model <dir>', 'multimodal model folder (default: the shipped one)')
    .option('--greedy', 'the most likely token each step (default unless a sampling flag is given)')
    .option('--top-k <k>', 'sample among the k most likely tokens')
    .option('--top-p <p>', 'sample from the smallest set of tokens with probability >= p')
    .option('--temperature <t>', 'sampling temperature')
    .option('--num <n>', `captions to draw per image (sampling; at most ${LIMITS.captions})`, '1')
    .option('--seed <n>', 'seed of the sampling draws', '0')
    .action(async (flags: CaptionFlags & { model?: string; input: string }) => {
      const folder = openMultimodalFolder(flags.model);
      const { options, num } = parseCaptionFlags(flags);
      const file = flags.input;
      const { imageHeight: H, imageWidth: W } = folder.config;
      const { cells, zoom } = await readCaptionInput(file, H, W);
      if (cells.length > 1 || zoom > 1) {
        const what = cells.length > 1 ? `a row of ${cells.length} ${W}x${H} images` : `one ${W}x${H} image`;
        process.stderr.write(`note: --input: ${file} is ${what}${zoom > 1 ? ` at zoom ${zoom}, reduced ${zoom}x by block averaging` : ''}\n`);
      }
      await initBackend({ quiet: true });
      const { model, codec } = loadMultimodalModel(folder.dir);
      try {
        captionCells(model, codec, cells, num, options).forEach((texts, cell) => {
          for (const t of texts) console.log(cells.length > 1 ? `cell ${cell}: ${t}` : t);
        });
      } finally {
        model.dispose();
      }
    });
}
