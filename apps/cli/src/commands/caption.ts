import * as fs from 'fs';
import { Command } from 'commander';
import sharp from 'sharp';
import { initBackend } from '@causalfusion/backend';
import { CanvasCodec, generateCaptions, loadMultimodalModel } from '@causalfusion/multimodal';
import { UsageError } from '../errors';
import { openMultimodalFolder, parseNumber, positiveInt } from './generate';

/**
 * `causalfusion caption --input image.png`: the image goes first as clean context, the caption is decoded
 * token by token over the KV cache (greedy, or sampled with --top-k / --top-p / --temperature, seeded).
 * The image must have the model's canvas size (e.g. 32x16); it is read as gray.
 */
export function registerCaption(program: Command): void {
  program
    .command('caption')
    .description('caption an image with a multimodal model: --input image.png [--greedy | --top-k K --top-p P --temperature T]')
    .requiredOption('--input <file>', 'the image (the model\'s canvas size, e.g. 32 wide x 16 high; gray or RGB)')
    .option('--model <dir>', 'multimodal model folder (default: the shipped one)')
    .option('--greedy', 'the most likely token each step (default unless a sampling flag is given)')
    .option('--top-k <k>', 'sample among the k most likely tokens')
    .option('--top-p <p>', 'sample from the smallest set of tokens with probability >= p')
    .option('--temperature <t>', 'sampling temperature')
    .option('--num <n>', 'captions to draw (sampling)', '1')
    .option('--seed <n>', 'seed of the sampling draws', '0')
    .action(async (flags: Record<string, string | boolean | undefined>) => {
      const folder = openMultimodalFolder(flags.model as string | undefined);
      const sampling = flags.topK !== undefined || flags.topP !== undefined || flags.temperature !== undefined;
      if (flags.greedy && sampling) throw new UsageError('--greedy cannot be combined with --top-k / --top-p / --temperature');
      const options = {
        greedy: !sampling,
        topK: flags.topK !== undefined ? parseNumber('--top-k', flags.topK as string, (n) => Number.isInteger(n) && n >= 1, 'an integer >= 1') : undefined,
        topP: flags.topP !== undefined ? parseNumber('--top-p', flags.topP as string, (n) => n > 0 && n <= 1, 'in (0, 1]') : undefined,
        temperature: flags.temperature !== undefined ? parseNumber('--temperature', flags.temperature as string, (n) => n > 0, 'a number > 0') : undefined,
        seed: parseNumber('--seed', flags.seed as string, (n) => Number.isSafeInteger(n) && n >= 0, 'an integer >= 0'),
      };
      const num = positiveInt('--num', flags.num as string, 64);
      const file = flags.input as string;
      if (!fs.existsSync(file)) throw new UsageError(`--input: ${file} does not exist`);
      const { imageHeight: H, imageWidth: W, patchSize } = folder.config;
      let pixels: Uint8Array;
      try {
        const { data, info } = await sharp(file).flatten({ background: '#000000' }).toColourspace('b-w').raw().toBuffer({ resolveWithObject: true });
        if (info.width !== W || info.height !== H) {
          throw new UsageError(`--input: ${file} is ${info.width}x${info.height}; this model captions ${W}x${H} images (width x height)`);
        }
        pixels = new Uint8Array(H * W);
        for (let p = 0; p < pixels.length; p++) pixels[p] = data[p * info.channels];
      } catch (e) {
        if (e instanceof UsageError) throw e;
        throw new UsageError(`--input: cannot read ${file} as an image (${(e as Error).message.split('\n')[0]})`);
      }
      await initBackend({ quiet: true });
      const { model, codec } = loadMultimodalModel(folder.dir);
      try {
        const tokens = new CanvasCodec(H, W, patchSize).encode(pixels);
        const batch = new Float32Array(num * tokens.length);
        for (let i = 0; i < num; i++) batch.set(tokens, i * tokens.length);
        const { texts } = generateCaptions(model, codec, batch, num, options);
        for (const t of texts) console.log(t);
      } finally {
        model.dispose();
      }
    });
}
