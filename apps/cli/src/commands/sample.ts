import * as path from 'path';
import { Command } from 'commander';
import { sample } from '@causalfusion/sampler';
import { makeDirs } from '@causalfusion/safetensors';
import {
  addSamplingFlags,
  checkImageCount,
  checkSamplingOutputs,
  classConditions,
  parseSamplingFlags,
  progressReporter,
  samplerOptions,
  writeResults,
  type SamplingFlags,
  type SamplingSettings,
} from '../generation';
import { UsageError } from '../errors';
import { writeGrid } from '../images';
import { boundedInt, LIMITS } from '../limits';
import { modelLine, openModel, parseRuntimeFlags } from '../runtime-flags';
import { readModelFolder, resolveClasses, type ModelFolder } from '../model-folder';
import { checkImageSize, checkOutDir } from '../outputs';
import { claimOutDir, indexFile, parseShard, shardRange, type Shard } from '../shard';

interface SampleFlags extends SamplingFlags {
  outDir?: string;
  shard?: string;
  batchSize?: string;
}

/** Images per sampler call with --out-dir, unless --batch-size says otherwise. */
const DEFAULT_DIR_BATCH = 64;

/** The seed of image `index` of a `sample --out-dir` run: its random order and all its noise come from it alone. */
export function imageSeed(seed: number, index: number): string {
  return `${seed}:${index}`;
}

/**
 * `causalfusion sample`: class-conditional images with S_eval AR steps, each a full diffusion loop over its
 * own tokens against the cond tokens and the finished ones (the paper's dual factorization). Writes a grid:
 * one row per class, `--num` images per row; or, with --out-dir, one PNG per image (optionally one shard of
 * the run: --shard i/N).
 */
export function registerSample(program: Command): void {
  const cmd = program
    .command('sample')
    .description('generate class-conditional images into an image grid (a row per class; PNG, JPEG or WebP), or one PNG per image (--out-dir)')
    .option('--class <class...>', "class names or indices (from the model's meta.json), e.g. --class 7 or --class 3,7 (default: every class)")
    .option('--num <n>', 'images per class', '4')
    .option('--out <file.png>', 'the grid to write: .png, .jpg/.jpeg or .webp', 'samples.png')
    .option(
      '--out-dir <dir>',
      `write each image to its own file DIR/<index>.png (index 0..classes x num - 1, ${LIMITS.dirImages - 1} at most, six digits), ` +
        'each drawn from its own seed (--seed and its index), instead of a grid',
    )
    .option(
      '--shard <i/N>',
      "with --out-dir: draw only shard i of N (counted from 0), the contiguous index range [floor(i*T/N), floor((i+1)*T/N)) of the T images; the shards' files together are the unsharded run's, byte for byte",
    )
    .option(
      '--batch-size <n>',
      `with --out-dir: images per sampler call (default ${DEFAULT_DIR_BATCH}, at most ${LIMITS.images}); the images do not depend on it`,
    );
  addSamplingFlags(cmd, { arSteps: '1', order: 'raster' }).action(async (flags: SampleFlags) => {
    // Everything that can be wrong with the input is checked before the backend starts.
    const runtime = parseRuntimeFlags(flags);
    const folder = readModelFolder(flags.model, flags.tokenizer);
    const classes = flags.class ? resolveClasses(flags.class, folder.meta) : folder.meta.classNames.map((_, i) => i);
    if (flags.outDir !== undefined) return sampleToDir(flags, folder, classes, runtime, cmd.getOptionValueSource('out') === 'cli');
    if (flags.shard !== undefined) throw new UsageError('--shard needs --out-dir: a shard writes its images as files, which together are the whole run');
    if (flags.batchSize !== undefined) throw new UsageError('--batch-size applies with --out-dir; a grid is drawn as one batch');
    const settings = parseSamplingFlags(
      flags,
      folder.config,
      folder.tokenizer.numTokens,
      folder.tokenizer.kind === 'pixel',
      undefined,
      {
        limit: LIMITS.images,
        hint: `a call draws at most ${LIMITS.images} images (classes x --num) into a grid; write one file per image with --out-dir (up to ${LIMITS.dirImages})`,
      },
      folder.meta.sampling,
    );
    checkImageCount(
      classes.length,
      settings.num,
      LIMITS.images,
      `run several calls with different --seed values, or write one file per image with --out-dir (up to ${LIMITS.dirImages})`,
    );
    const conditions = classConditions(classes, settings.num);
    const { imageSize } = folder.tokenizer;
    checkSamplingOutputs(flags, conditions.length, settings.num, imageSize, imageSize, settings.zoom);

    const opened = await openModel(folder, runtime);
    process.stderr.write(`${modelLine(folder, opened.where)}\n`);
    const started = Date.now();
    let result;
    try {
      result = await sample(opened.denoiser, {
        ...samplerOptions(settings, conditions, folder.tokenizer.grid, !!flags.progressFrames),
        onProgress: progressReporter('sample'),
      });
    } finally {
      await opened.close();
    }
    const seconds = (Date.now() - started) / 1000;

    await writeResults(folder, result, flags, conditions.length, settings);
    const names = classes.map((c) => folder.meta.classNames[c]).join(', ');
    console.log(
      `wrote ${flags.out}: ${conditions.length} images (${classes.length} rows of ${settings.num}; classes ${names}), ` +
        `${result.splitSizes.length} AR steps [${result.splitSizes.join(', ')}] x ${settings.diffusion.numTimesteps} ` +
        `${settings.method} steps, CFG ${settings.cfgScale}, seed ${settings.seed}, ${seconds.toFixed(1)}s`,
    );
  });
}

/**
 * `sample --out-dir DIR [--shard i/N]`: image k (class classes[floor(k / num)], as in the grid's row-major
 * order) is drawn from seed `${seed}:${k}` alone and written to DIR/<k>.png as soon as its batch is done, so
 * memory holds one batch whatever the total, and an image is the same bytes whichever shard or batch drew it.
 */
async function sampleToDir(
  flags: SampleFlags,
  folder: ModelFolder,
  classes: number[],
  runtime: ReturnType<typeof parseRuntimeFlags>,
  outGiven: boolean,
): Promise<void> {
  const outDir = flags.outDir!;
  if (outGiven) throw new UsageError('--out names a grid; with --out-dir each image is its own file: give one of them');
  if (flags.progressFrames !== undefined) throw new UsageError('--progress-frames draws grids of a single batch; it does not combine with --out-dir');
  const hint = `a run writes at most ${LIMITS.dirImages} files (classes x --num); use several --out-dir folders with different --seed values`;
  const settings = parseSamplingFlags(
    flags,
    folder.config,
    folder.tokenizer.numTokens,
    folder.tokenizer.kind === 'pixel',
    undefined,
    { limit: LIMITS.dirImages, hint },
    folder.meta.sampling,
  );
  checkImageCount(classes.length, settings.num, LIMITS.dirImages, 'use several --out-dir folders with different --seed values');
  const shard: Shard = flags.shard === undefined ? { index: 0, count: 1 } : parseShard(flags.shard);
  const batchSize = flags.batchSize === undefined ? DEFAULT_DIR_BATCH : boundedInt(flags.batchSize, '--batch-size', LIMITS.images);
  const { imageSize } = folder.tokenizer;
  checkOutDir(outDir, '--out-dir');
  checkImageSize(imageSize * settings.zoom, imageSize * settings.zoom, 'png', '--out-dir');

  const total = classes.length * settings.num;
  const { start, end } = shardRange(total, shard);
  makeDirs(outDir);
  claimOutDir(outDir, { format: 'causalfusion-samples', total, run: runRecord(folder, classes, settings, flags) });
  const what = shard.count > 1 ? `shard ${shard.index}/${shard.count}: ` : '';
  if (start === end) {
    await folder.tokenizer.close();
    console.log(`${what}no images to draw (${total} images over ${shard.count} shards); nothing written to ${outDir}`);
    return;
  }

  const opened = await openModel(folder, runtime);
  process.stderr.write(`${modelLine(folder, opened.where)}\n`);
  const started = Date.now();
  const { channels } = folder.tokenizer;
  const bytes = imageSize * imageSize * channels;
  let splitSizes: number[] = [];
  try {
    for (let from = start; from < end; from += batchSize) {
      const to = Math.min(end, from + batchSize);
      const indices = Array.from({ length: to - from }, (_, k) => from + k);
      const conditions = indices.map((k) => classes[Math.floor(k / settings.num)]);
      const result = await sample(opened.denoiser, {
        ...samplerOptions(settings, conditions, folder.tokenizer.grid, false),
        rowSeeds: indices.map((k) => imageSeed(settings.seed, k)),
        onProgress: progressReporter(`sample ${from - start + 1}-${to - start}/${end - start}`),
      });
      splitSizes = result.splitSizes;
      const decoded = await folder.tokenizer.decode(result.tokens);
      for (let k = 0; k < indices.length; k++) {
        await writeGrid(indexFile(outDir, indices[k]), decoded.subarray(k * bytes, (k + 1) * bytes), 1, 1, imageSize, channels, settings.zoom);
      }
    }
  } finally {
    await opened.close();
    await folder.tokenizer.close();
  }
  const seconds = (Date.now() - started) / 1000;
  const names = classes.map((c) => folder.meta.classNames[c]).join(', ');
  console.log(
    `${what}wrote ${end - start} images ${path.basename(indexFile(outDir, start))} .. ${path.basename(indexFile(outDir, end - 1))} of ${total} ` +
      `(${classes.length} classes x ${settings.num}; classes ${names}) to ${outDir}, ` +
      `${splitSizes.length} AR steps [${splitSizes.join(', ')}] x ${settings.diffusion.numTimesteps} ` +
      `${settings.method} steps, CFG ${settings.cfgScale}, seed ${settings.seed} (one per image), ${seconds.toFixed(1)}s`,
  );
}

/** What decides the images of a run (the weights aside): shards of one run must agree on all of it. */
function runRecord(folder: ModelFolder, classes: number[], s: SamplingSettings, flags: SampleFlags): Record<string, unknown> {
  return {
    classes: classes.map((c) => folder.meta.classNames[c]),
    num: s.num,
    seed: s.seed,
    arSteps: s.arSteps,
    order: s.order,
    steps: flags.steps,
    sampler: s.method,
    cfg: s.cfgScale,
    cfgInterval: s.cfgInterval,
    clip: s.clipDenoised,
    zoom: s.zoom,
    imageSize: folder.tokenizer.imageSize,
    channels: folder.tokenizer.channels,
  };
}
