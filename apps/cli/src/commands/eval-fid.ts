import * as fs from 'fs';
import * as path from 'path';
import { Command } from 'commander';
import {
  computeStatistics,
  createInceptionExtractor,
  createMnistFeatureExtractor,
  decodeImage,
  frechetDistance,
  listImageFiles,
  partialStatisticsFromImages,
  readNpz,
  savePartialNpz,
  saveStatsNpz,
  type FeatureExtractor,
  type StatisticsResult,
} from '@causalfusion/eval';
import { UsageError } from '../errors';
import { boundedInt, LIMITS } from '../limits';
import { checkOutFile } from '../outputs';
import { indexFile, MANIFEST, parseShard, readManifest, shardRange, type Shard } from '../shard';

interface FidCliOptions {
  real?: string;
  fake?: string;
  shard?: string;
  savePartial?: string;
  features: string;
  batchSize?: string;
  saveStats?: string;
  epsFallback: string;
  json?: boolean;
}

/** True when `source` must go through the feature network (a folder, or an .npz without mu/sigma). */
export function holdsImages(source: string, flag: string): boolean {
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

export async function createExtractor(features: string): Promise<FeatureExtractor> {
  if (features === 'mnist') return createMnistFeatureExtractor();
  if (!features.toLowerCase().endsWith('.onnx')) {
    throw new UsageError(`--features: expected 'mnist' or a path to an InceptionV3 .onnx file, got '${features}'`);
  }
  return createInceptionExtractor(features);
}

/** A progress bar on stderr: redrawn in place on a terminal, a line per 10% otherwise. */
export function progressBar(label: string): (done: number, total: number) => void {
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

export function fromPackage<T>(work: () => Promise<T>): Promise<T> {
  // Every error the eval package throws here is about the inputs (missing file, stray file, bad shape).
  return work().catch((e: unknown) => {
    throw e instanceof UsageError ? e : new UsageError((e as Error).message);
  });
}

/** An `.npz` the command writes (statistics or partial statistics), checked before any image is read. */
export function checkNpzOut(file: string, flag: string, what: string): void {
  if (!file.toLowerCase().endsWith('.npz')) throw new UsageError(`${flag}: ${file} must end in .npz (${what})`);
  checkOutFile(file, flag, flag === '--save-partial' ? 'part-0.npz' : 'stats.npz');
}

/**
 * The FID and what comes with it, printed as `eval fid` prints them (`eval merge` prints the same): `FID: x`
 * (and IS lines when known), or one JSON line with --json.
 */
export async function reportFid(
  real: StatisticsResult,
  fake: StatisticsResult,
  labels: { real: string; fake: string },
  opts: { epsFallback: string; json?: boolean },
  features: string | null,
): Promise<void> {
  if (real.stats.dim !== fake.stats.dim) {
    throw new UsageError(
      `statistics of different dimensions: --real ${labels.real} has ${real.stats.dim}, ${labels.fake} has ${fake.stats.dim}; compute both with the same --features`,
    );
  }
  const fid = await frechetDistance(real.stats, fake.stats, { epsFallback: opts.epsFallback as 'auto' | 'never' | 'always' });
  if (opts.json) {
    console.log(
      JSON.stringify({
        fid: fid.distance,
        epsFallback: fid.epsFallback,
        features,
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
}

export function checkEpsFallback(mode: string): void {
  if (!['auto', 'never', 'always'].includes(mode)) throw new UsageError(`--eps-fallback: expected auto, never or always, got '${mode}'`);
}

/**
 * The image files of shard `shard` of folder `dir`. A folder `sample --out-dir` wrote (its record names T,
 * the images of the whole run): the files of indices [floor(i*T/N), floor((i+1)*T/N)), which must all be
 * there, so a shard can be evaluated as soon as ITS images are drawn, while other shards still draw theirs.
 * Any other folder: that contiguous range of its sorted image files. A complete `sample --out-dir` folder
 * gives the same files both ways.
 */
export function shardFiles(dir: string, shard: Shard, flag = '--fake'): { files: string[]; total: number } {
  let manifest;
  try {
    manifest = readManifest(dir);
  } catch (e) {
    throw new UsageError(`${flag}: ${(e as Error).message}`);
  }
  if (manifest) {
    const { start, end } = shardRange(manifest.total, shard);
    const files = Array.from({ length: end - start }, (_, k) => indexFile(dir, start + k));
    const missing = files.filter((f) => !fs.existsSync(f));
    if (missing.length) {
      throw new UsageError(
        `${flag}: ${missing.length} of the ${files.length} images of shard ${shard.index}/${shard.count} are missing (${path.basename(missing[0])}` +
          `${missing.length > 1 ? ', ...' : ''}); run sample --out-dir ${dir} --shard ${shard.index}/${shard.count} to the end first`,
      );
    }
    return { files, total: manifest.total };
  }
  let all: string[];
  try {
    all = listImageFiles(dir);
  } catch (e) {
    throw new UsageError(`${flag}: ${(e as Error).message}`);
  }
  const { start, end } = shardRange(all.length, shard);
  return { files: all.slice(start, end), total: all.length };
}

/** `eval fid --fake DIR [--shard i/N] --save-partial part.npz`: the partial statistics of a shard's images. */
async function savePartial(opts: FidCliOptions, batchSize: number | undefined): Promise<void> {
  const out = opts.savePartial!;
  if (opts.real !== undefined)
    throw new UsageError('--save-partial computes the statistics of --fake only; give --real to eval merge, which combines the shards');
  if (opts.saveStats !== undefined)
    throw new UsageError('--save-stats saves whole statistics; with --save-partial the shards are combined by eval merge --save-stats');
  if (opts.fake === undefined) throw new UsageError('--save-partial needs --fake DIR: the folder of images to compute the statistics of');
  checkNpzOut(out, '--save-partial', 'partial statistics are an .npz');
  let stat: fs.Stats;
  try {
    stat = fs.statSync(opts.fake);
  } catch {
    throw new UsageError(`--fake: ${opts.fake} does not exist; pass the folder of images to shard`);
  }
  if (!stat.isDirectory()) throw new UsageError(`--fake: ${opts.fake} is not a folder; --shard and --save-partial split a folder of images`);
  const shard: Shard = opts.shard === undefined ? { index: 0, count: 1 } : parseShard(opts.shard);
  const { files, total } = shardFiles(opts.fake, shard);
  const extractor = await fromPackage(() => createExtractor(opts.features));
  let partial;
  try {
    partial = await fromPackage(() =>
      partialStatisticsFromImages(files.length, (i) => decodeImage(files[i]), extractor, {
        batchSize,
        onProgress: progressBar(`fake ${shard.index}/${shard.count}`),
      }),
    );
  } finally {
    await extractor.dispose?.();
  }
  savePartialNpz(out, partial, { index: shard.index, count: shard.count, total, features: extractor.name });
  const range = files.length ? `${path.basename(files[0])} .. ${path.basename(files[files.length - 1])}` : 'no images';
  if (opts.json) {
    console.log(JSON.stringify({ partial: out, shard: [shard.index, shard.count], count: partial.count, total, dim: partial.dim, features: extractor.name }));
    return;
  }
  console.log(
    `saved the partial statistics of shard ${shard.index}/${shard.count} (${partial.count} of ${total} images: ${range}; ${partial.dim}-d ${extractor.name} features) to ${out}`,
  );
}

/** `causalfusion eval fid`: FID (pytorch-fid / ADM exact) between two folders or .npz statistics. */
export function registerEvalFid(evalCmd: Command): void {
  evalCmd
    .command('fid')
    .description('Frechet Inception Distance between two image folders or .npz statistics (pytorch-fid / ADM evaluator)')
    .option('--real <dir|stats.npz>', 'reference images (folder) or statistics (.npz with mu/sigma, or an ADM batch); required unless --save-partial')
    .option('--fake <dir|stats.npz>', 'generated images or statistics; omit with --save-stats to only save --real')
    .option('--features <inception.onnx|mnist>', "feature network: an InceptionV3 ONNX export, or 'mnist' (FID-MNIST)", 'mnist')
    .option('--batch-size <n>', `images per network call (default: 50 for Inception, 500 for mnist; at most ${LIMITS.fidBatch})`)
    .option('--save-stats <out.npz>', 'write the statistics computed from images (--real first) as pytorch-fid .npz')
    .option(
      '--shard <i/N>',
      `with --save-partial: only shard i of N (from 0) of the --fake folder: images [floor(i*T/N), floor((i+1)*T/N)) (a sample --out-dir folder's own record, ${MANIFEST}, names T; else its T sorted files)`,
    )
    .option(
      '--save-partial <part.npz>',
      'write the partial statistics (count, mean, centred outer products; float64) of --fake, or of its --shard, for eval merge; no FID',
    )
    .option('--eps-fallback <mode>', "'auto' (reproduces pytorch-fid/ADM), 'never' or 'always'", 'auto')
    .option('--json', 'print the result as JSON')
    .action(async (opts: FidCliOptions) => {
      checkEpsFallback(opts.epsFallback);
      const batchSize = opts.batchSize === undefined ? undefined : boundedInt(opts.batchSize, '--batch-size', LIMITS.fidBatch);
      if (opts.shard !== undefined && opts.savePartial === undefined) {
        throw new UsageError('--shard needs --save-partial part.npz: a shard writes partial statistics, and eval merge turns all of them into the FID');
      }
      if (opts.savePartial !== undefined) return savePartial(opts, batchSize);
      if (opts.real === undefined) throw new UsageError("required option '--real <dir|stats.npz>' not specified");
      if (!opts.fake && !opts.saveStats) throw new UsageError('--fake is required (or give --save-stats to only save the statistics of --real)');
      // where the statistics go is checked before any image is read
      if (opts.saveStats !== undefined) checkNpzOut(opts.saveStats, '--save-stats', 'the statistics are a pytorch-fid .npz');
      const inputs: { path: string; flag: '--real' | '--fake' }[] = [{ path: opts.real, flag: '--real' }];
      if (opts.fake) inputs.push({ path: opts.fake, flag: '--fake' });
      const images = inputs.map((input) => holdsImages(input.path, input.flag));
      const extractor = images.some(Boolean) ? await fromPackage(() => createExtractor(opts.features)) : undefined;
      const results: StatisticsResult[] = [];
      try {
        for (const input of inputs) {
          results.push(await fromPackage(() => computeStatistics(input.path, { extractor, batchSize, onProgress: progressBar(input.flag.slice(2)) })));
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
      await reportFid(real, fake, { real: opts.real, fake: `--fake ${opts.fake}` }, opts, extractor?.name ?? null);
    });
}
