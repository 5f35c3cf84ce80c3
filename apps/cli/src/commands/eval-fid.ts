import * as fs from 'fs';
import { Command } from 'commander';
import {
  computeStatistics,
  createInceptionExtractor,
  createMnistFeatureExtractor,
  frechetDistance,
  readNpz,
  saveStatsNpz,
  type FeatureExtractor,
  type StatisticsResult,
} from '@causalfusion/eval';
import { UsageError } from '../errors';
import { boundedInt, LIMITS } from '../limits';
import { checkOutFile } from '../outputs';

interface FidCliOptions {
  real: string;
  fake?: string;
  features: string;
  batchSize?: string;
  saveStats?: string;
  epsFallback: string;
  json?: boolean;
}

/** True when `source` must go through the feature network (a folder, or an .npz without mu/sigma). */
function holdsImages(source: string, flag: string): boolean {
  let stat: fs.Stats;
  try {
    stat = fs.statSync(source);
  } catch {
    throw new UsageError(`${flag}: ${source} does not exist; pass a folder of images or an .npz of statistics`);
  }
  if (stat.isDirectory()) return true;
  if (!source.toLowerCase().endsWith('.npz')) throw new UsageError(`${flag}: ${source} is neither a folder of images nor an .npz file`);
  try {
    return !readNpz(source).has('mu');
  } catch (e) {
    throw new UsageError(`${flag}: ${(e as Error).message}`);
  }
}

async function createExtractor(features: string): Promise<FeatureExtractor> {
  if (features === 'mnist') return createMnistFeatureExtractor();
  if (!features.toLowerCase().endsWith('.onnx')) {
    throw new UsageError(`--features: expected 'mnist' or a path to an InceptionV3 .onnx file, got '${features}'`);
  }
  return createInceptionExtractor(features);
}

/** A progress bar on stderr: redrawn in place on a terminal, a line per 10% otherwise. */
function progressBar(label: string): (done: number, total: number) => void {
  let lastTenth = -1;
  return (done, total) => {
    const width = 30;
    const filled = Math.round((done / total) * width);
    const text = `${label.padEnd(5)} [${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${done}/${total} images`;
    if (process.stderr.isTTY) {
      process.stderr.write(`\r${text}${done === total ? '\n' : ''}`);
      return;
    }
    const tenth = Math.floor((done / total) * 10);
    if (tenth !== lastTenth || done === total) {
      lastTenth = tenth;
      process.stderr.write(`${text}\n`);
    }
  };
}

function fromPackage<T>(work: () => Promise<T>): Promise<T> {
  // Every error the eval package throws here is about the inputs (missing file, stray file, bad shape).
  return work().catch((e: unknown) => {
    throw e instanceof UsageError ? e : new UsageError((e as Error).message);
  });
}

/** `causalfusion eval fid`: FID (pytorch-fid / ADM exact) between two folders or .npz statistics. */
export function registerEvalFid(evalCmd: Command): void {
  evalCmd
    .command('fid')
    .description('Frechet Inception Distance between two image folders or .npz statistics (pytorch-fid / ADM evaluator)')
    .requiredOption('--real <dir|stats.npz>', 'reference images (folder) or statistics (.npz with mu/sigma, or an ADM batch)')
    .option('--fake <dir|stats.npz>', 'generated images or statistics; omit with --save-stats to only save --real')
    .option('--features <inception.onnx|mnist>', "feature network: an InceptionV3 ONNX export, or 'mnist' (FID-MNIST)", 'mnist')
    .option('--batch-size <n>', `images per network call (default: 50 for Inception, 500 for mnist; at most ${LIMITS.fidBatch})`)
    .option('--save-stats <out.npz>', 'write the statistics computed from images (--real first) as pytorch-fid .npz')
    .option('--eps-fallback <mode>', "'auto' (reproduces pytorch-fid/ADM), 'never' or 'always'", 'auto')
    .option('--json', 'print the result as JSON')
    .action(async (opts: FidCliOptions) => {
      if (!opts.fake && !opts.saveStats) throw new UsageError('--fake is required (or give --save-stats to only save the statistics of --real)');
      if (!['auto', 'never', 'always'].includes(opts.epsFallback)) {
        throw new UsageError(`--eps-fallback: expected auto, never or always, got '${opts.epsFallback}'`);
      }
      const batchSize = opts.batchSize === undefined ? undefined : boundedInt(opts.batchSize, '--batch-size', LIMITS.fidBatch);
      // where the statistics go is checked before any image is read
      if (opts.saveStats !== undefined) {
        if (!opts.saveStats.toLowerCase().endsWith('.npz')) throw new UsageError(`--save-stats: ${opts.saveStats} must end in .npz (the statistics are a pytorch-fid .npz)`);
        checkOutFile(opts.saveStats, '--save-stats', 'stats.npz');
      }
      const inputs: { path: string; flag: '--real' | '--fake' }[] = [{ path: opts.real, flag: '--real' }];
      if (opts.fake) inputs.push({ path: opts.fake, flag: '--fake' });
      const images = inputs.map((input) => holdsImages(input.path, input.flag));
      const extractor = images.some(Boolean) ? await fromPackage(() => createExtractor(opts.features)) : undefined;
      const results: StatisticsResult[] = [];
      try {
        for (const input of inputs) {
          results.push(
            await fromPackage(() =>
              computeStatistics(input.path, { extractor, batchSize, onProgress: progressBar(input.flag.slice(2)) }),
            ),
          );
        }
      } finally {
        await extractor?.dispose?.();
      }
      if (opts.saveStats) {
        const index = images.indexOf(true);
        if (index < 0) throw new UsageError('--save-stats: both inputs are already statistics; nothing was computed to save');
        saveStatsNpz(opts.saveStats, results[index].stats);
        console.error(`saved ${inputs[index].flag.slice(2)} statistics (${results[index].stats.dim}-d) to ${opts.saveStats}`);
      }
      if (!opts.fake) return;
      const [real, fake] = results;
      if (real.stats.dim !== fake.stats.dim) {
        throw new UsageError(
          `statistics of different dimensions: --real ${opts.real} has ${real.stats.dim}, --fake ${opts.fake} has ${fake.stats.dim}; compute both with the same --features`,
        );
      }
      const fid = await frechetDistance(real.stats, fake.stats, { epsFallback: opts.epsFallback as 'auto' | 'never' | 'always' });
      if (opts.json) {
        console.log(
          JSON.stringify({
            fid: fid.distance,
            epsFallback: fid.epsFallback,
            features: extractor?.name ?? null,
            real: { count: real.count ?? null, inceptionScore: real.inceptionScore ?? null },
            fake: { count: fake.count ?? null, inceptionScore: fake.inceptionScore ?? null },
          }),
        );
        return;
      }
      if (fid.epsFallback) console.error('note: the product of the covariances is singular; used the eps = 1e-6 offset, as pytorch-fid does');
      console.log(`FID: ${fid.distance}`);
      if (fake.inceptionScore !== undefined) console.log(`IS (fake): ${fake.inceptionScore}`);
      if (real.inceptionScore !== undefined) console.log(`IS (real): ${real.inceptionScore}`);
    });
}
