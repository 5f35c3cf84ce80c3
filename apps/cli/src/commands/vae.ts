import * as path from 'path';
import { Command } from 'commander';
import { createRng } from '@causalfusion/rng';
import {
  encodeImageFolder,
  initVaeFolder,
  loadVae,
  nchwToImages,
  openLatentCache,
  samplePosterior,
  VAE_PRESETS,
  type Vae,
  type VaePresetName,
} from '@causalfusion/vae';
import { UsageError } from '../errors';
import { defaultZoom, gridSize, writeGrid } from '../images';
import { boundedInt, LIMITS } from '../limits';
import { checkImageOut, checkImageSize, checkOutDir, checkOutFile } from '../outputs';

function positiveInt(value: string, flag: string, max: number = Number.MAX_SAFE_INTEGER): number {
  return boundedInt(value, flag, max);
}

async function openVae(dir: string, threads?: string): Promise<Vae> {
  try {
    return await loadVae(dir, { threads: threads === undefined ? undefined : positiveInt(threads, '--threads', LIMITS.threads) });
  } catch (e) {
    throw e instanceof UsageError ? e : new UsageError(`--vae: ${(e as Error).message.split('\n')[0]}`);
  }
}

/** A progress bar on stderr: redrawn on a terminal, a line per 10% otherwise. */
function progressBar(label: string): (done: number, total: number) => void {
  const started = Date.now();
  let lastTenth = -1;
  return (done, total) => {
    const width = 20;
    const filled = Math.round((done / Math.max(total, 1)) * width);
    const seconds = (Date.now() - started) / 1000;
    const text = `${label} [${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${done}/${total} images ${seconds.toFixed(1)}s`;
    if (process.stderr.isTTY) process.stderr.write(`\r${text}\x1b[K${done === total ? '\n' : ''}`);
    else if (Math.floor((10 * done) / Math.max(total, 1)) !== lastTenth) {
      lastTenth = Math.floor((10 * done) / Math.max(total, 1));
      process.stderr.write(`${text}\n`);
    }
  };
}

/**
 * `causalfusion vae init`, `encode` and `decode`: make a VAE folder from exported ONNX graphs, encode an
 * image folder once into a latent cache (what `train --tokenizer vae:DIR` reads), and look at a cache's
 * latents decoded back to images.
 */
export function registerVae(program: Command): void {
  const vae = program.command('vae').description('VAE folders (encoder.onnx, decoder.onnx, vae.json) for latent-space models');
  vae
    .command('init')
    .description("make a VAE folder from an encoder and a decoder exported to ONNX (see @causalfusion/vae's README); writes vae.json")
    .requiredOption('--encoder <file.onnx>', 'the exported encoder: image [N, 3, H, W] in [-1, 1] -> moments [N, 2C, h, w]')
    .requiredOption('--decoder <file.onnx>', 'the exported decoder: latent [N, C, h, w] -> image [N, 3, H, W]')
    .requiredOption('--out <dir>', 'the VAE folder to write')
    .option('--preset <name>', `name and scale factor of a published VAE: ${Object.keys(VAE_PRESETS).join(', ')} (MAR's KL-16: 0.2325, SD's kl-f8: 0.18215)`)
    .option('--name <name>', "the VAE's name (recorded in latent caches and models)")
    .option('--scale <x>', 'the latent scale factor the diffusion model trains with')
    .option('--image-size <n>', 'image side, when the export left it symbolic')
    .option('--downsample <n>', 'image side / latent side, when the export left it symbolic')
    .action(
      async (flags: {
        encoder: string;
        decoder: string;
        out: string;
        preset?: string;
        name?: string;
        scale?: string;
        imageSize?: string;
        downsample?: string;
      }) => {
        let preset: (typeof VAE_PRESETS)[VaePresetName] | undefined;
        if (flags.preset !== undefined) {
          if (!(flags.preset in VAE_PRESETS)) throw new UsageError(`--preset: unknown VAE '${flags.preset}'; use ${Object.keys(VAE_PRESETS).join(' or ')}`);
          preset = VAE_PRESETS[flags.preset as VaePresetName];
        }
        const name = flags.name ?? preset?.name;
        if (!name) throw new UsageError('--name: give the VAE a name (or --preset mar|sd)');
        const scaleFactor = flags.scale !== undefined ? Number(flags.scale) : preset?.scaleFactor;
        if (scaleFactor === undefined || !(scaleFactor > 0) || !Number.isFinite(scaleFactor)) {
          throw new UsageError(
            `--scale: give the latent scale factor, a positive number (0.2325 for MAR's VAE, 0.18215 for SD's)${flags.scale ? `, got '${flags.scale}'` : ''}`,
          );
        }
        const imageSize = flags.imageSize === undefined ? preset?.imageSize : positiveInt(flags.imageSize, '--image-size', LIMITS.vaeImageSize);
        const downsample =
          flags.downsample === undefined ? preset?.downsample : positiveInt(flags.downsample, '--downsample', imageSize ?? LIMITS.vaeImageSize);
        checkOutDir(flags.out, '--out');
        let config;
        try {
          config = await initVaeFolder({ dir: flags.out, encoder: flags.encoder, decoder: flags.decoder, name, scaleFactor, imageSize, downsample });
        } catch (e) {
          throw new UsageError((e as Error).message.split('\n')[0]);
        }
        const latent = config.imageSize / config.downsample;
        console.log(
          `wrote ${path.resolve(flags.out)}: ${config.name}, ${config.imageSize}x${config.imageSize} RGB -> ${config.latentChannels}x${latent}x${latent} ` +
            `latents (downsampling ${config.downsample}), scale factor ${config.scaleFactor}`,
        );
      },
    );

  program
    .command('encode')
    .description('encode an image folder once with a VAE into a latent cache for `train --tokenizer vae:DIR` (resumable: run it again after an interruption)')
    .requiredOption('--data <dir>', 'image folder: one sub-folder of PNG/JPEG images per class')
    .requiredOption('--vae <dir>', 'VAE folder (encoder.onnx, decoder.onnx, vae.json)')
    .requiredOption('--out <file>', 'the latent cache to write, e.g. latents.bin')
    .option('--batch <n>', `images per encoder call (each batch is saved before the next; at most ${LIMITS.encodeBatch})`, '16')
    .option('--no-flip', "do not store the flipped images' latents (stored by default, for flip augmentation)")
    .option('--limit <n>', 'encode only the first n images')
    .option('--threads <n>', 'onnxruntime intra-op threads (default: one per core)')
    .action(async (flags: { data: string; vae: string; out: string; batch: string; flip: boolean; limit?: string; threads?: string }) => {
      const batchSize = positiveInt(flags.batch, '--batch', LIMITS.encodeBatch);
      // no maximum: the cache is written batch by batch, in bounded memory
      const limit = flags.limit === undefined ? undefined : positiveInt(flags.limit, '--limit');
      checkOutFile(flags.out, '--out', 'latents.bin');
      const model = await openVae(flags.vae, flags.threads);
      const started = Date.now();
      let result;
      try {
        result = await encodeImageFolder({
          data: flags.data,
          vae: model,
          out: flags.out,
          batchSize,
          flip: flags.flip,
          limit,
          onProgress: progressBar('encode'),
        });
      } catch (e) {
        throw new UsageError((e as Error).message.split('\n')[0]);
      } finally {
        await model.release();
      }
      const { header, resumedAt } = result;
      console.log(
        `wrote ${flags.out}: ${header.count} images of ${header.classNames.length} classes as ${header.latentShape.join('x')} latents of ${header.vae.name} ` +
          `(mean and logvar${header.flip ? ', and of the flipped image' : ''})${resumedAt ? `, resumed at image ${resumedAt}` : ''}, ` +
          `${((Date.now() - started) / 1000).toFixed(1)}s`,
      );
    });

  program
    .command('decode')
    .description('decode latents of a latent cache back to images (a PNG grid), to check a cache')
    .requiredOption('--latents <file>', 'the latent cache (from causalfusion encode)')
    .requiredOption('--vae <dir>', 'the VAE folder that made it')
    .option('--out <file.png>', 'the grid to write: .png, .jpg/.jpeg or .webp', 'decoded.png')
    .option('--start <i>', 'first image', '0')
    .option('--num <n>', `images to decode (at most ${LIMITS.decodeImages})`, '8')
    .option('--flipped', 'decode the stored flipped latents')
    .option('--seed <n>', 'decode a posterior sample drawn with this seed instead of the mean')
    .option('--zoom <n>', 'enlarge the grid n times (nearest neighbour)')
    .option('--threads <n>', 'onnxruntime intra-op threads')
    .action(
      async (flags: {
        latents: string;
        vae: string;
        out: string;
        start: string;
        num: string;
        flipped?: boolean;
        seed?: string;
        zoom?: string;
        threads?: string;
      }) => {
        const start = Number(flags.start);
        if (!/^\d+$/.test(flags.start.trim())) throw new UsageError(`--start: expected an index >= 0, got '${flags.start}'`);
        let num = positiveInt(flags.num, '--num', LIMITS.decodeImages);
        const zoomFlag = flags.zoom === undefined ? undefined : positiveInt(flags.zoom, '--zoom', LIMITS.zoom);
        const format = checkImageOut(flags.out, '--out');
        const seed = flags.seed === undefined ? undefined : Number(flags.seed);
        if (seed !== undefined && (!/^\d+$/.test(flags.seed!.trim()) || !Number.isSafeInteger(seed)))
          throw new UsageError(`--seed: expected a non-negative integer, got '${flags.seed}'`);
        let cache;
        try {
          cache = openLatentCache(flags.latents);
        } catch (e) {
          throw new UsageError(`--latents: ${(e as Error).message}`);
        }
        try {
          if (start >= cache.count) throw new UsageError(`--start: ${start} is past the cache's ${cache.count} images`);
          if (flags.flipped && cache.views < 2) throw new UsageError(`--flipped: ${flags.latents} was encoded with --no-flip`);
          num = Math.min(num, cache.count - start);
          const side = cache.header.vae.imageSize;
          const zoom = zoomFlag ?? defaultZoom(side);
          const size = gridSize(num, Math.min(num, 8), side, side, zoom);
          checkImageSize(size.width, size.height, format, '--out');
          const model = await openVae(flags.vae, flags.threads);
          try {
            if (model.config.name !== cache.header.vae.name || model.latentLength !== cache.latentLength) {
              throw new UsageError(
                `--vae: ${flags.latents} holds latents of ${cache.header.vae.name} (${cache.header.latentShape.join('x')}), not of ${model.config.name}`,
              );
            }
            const z = new Float32Array(num * cache.latentLength);
            const rng = seed === undefined ? null : createRng(seed);
            for (let i = 0; i < num; i++) {
              const posterior = cache.read(start + i, flags.flipped ? 1 : 0);
              z.set(rng ? samplePosterior(posterior, rng) : posterior.mean, i * cache.latentLength);
            }
            const images = nchwToImages(await model.decode(z), model.imageSize);
            await writeGrid(flags.out, images, num, Math.min(num, 8), model.imageSize, 3, zoom);
          } finally {
            await model.release();
          }
        } finally {
          cache.close();
        }
        const labels = Array.from({ length: num }, (_, i) => cache.classNames[cache.labels[start + i]]);
        console.log(`wrote ${flags.out}: images ${start}..${start + num - 1} of ${flags.latents} (${labels.join(', ')})`);
      },
    );
}
