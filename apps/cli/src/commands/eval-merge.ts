import * as path from 'path';
import { Command } from 'commander';
import { computeStatistics, mergePartials, readPartialNpz, saveStatsNpz, type ShardPartial, type StatisticsResult } from '@causalfusion/eval';
import { UsageError } from '../errors';
import { boundedInt, LIMITS } from '../limits';
import { shardRange } from '../shard';
import { checkEpsFallback, checkNpzOut, createExtractor, fromPackage, holdsImages, progressBar, reportFid } from './eval-fid';

interface MergeCliOptions {
  real?: string;
  features: string;
  batchSize?: string;
  saveStats?: string;
  epsFallback: string;
  json?: boolean;
}

/**
 * Read the parts and check that they are the N shards of one evaluation, each once: same N, same total,
 * same feature dimension, each holding the images its range holds. Returned in shard order.
 */
export function readShards(files: string[]): ShardPartial[] {
  const parts = files.map((file) => {
    let p: ShardPartial;
    try {
      p = readPartialNpz(file);
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
    if (!p.shard) throw new UsageError(`${file}: no shard record (partial_shard, partial_total); write the parts with eval fid --shard i/N --save-partial`);
    return { file, p, shard: p.shard };
  });
  const [first] = parts;
  for (const { file, p, shard } of parts) {
    if (shard.count !== first.shard.count) {
      throw new UsageError(
        `parts of different shardings: ${first.file} is shard ${first.shard.index}/${first.shard.count}, ${file} is ${shard.index}/${shard.count}`,
      );
    }
    if (shard.total !== first.shard.total) {
      throw new UsageError(
        `${first.file} is a shard of ${first.shard.total} images, ${file} of ${shard.total}: the folder changed between shards; evaluate every shard of the finished folder`,
      );
    }
    if (p.dim !== first.p.dim || shard.features !== first.shard.features) {
      const of = (x: { p: ShardPartial; shard: { features?: string } }) => `${x.p.dim}-d ${x.shard.features ?? 'unnamed'} features`;
      throw new UsageError(`${first.file} holds ${of(first)}, ${file} ${of({ p, shard })}: every shard must use the same --features`);
    }
    const { start, end } = shardRange(shard.total, shard);
    if (p.count !== end - start) {
      throw new UsageError(`${file} holds ${p.count} images, but shard ${shard.index}/${shard.count} of ${shard.total} has ${end - start}`);
    }
  }
  const n = first.shard.count;
  const byIndex = new Map<number, string>();
  for (const { file, shard } of parts) {
    const seen = byIndex.get(shard.index);
    if (seen !== undefined) throw new UsageError(`shard ${shard.index}/${n} is given twice: ${seen} and ${file}`);
    byIndex.set(shard.index, file);
  }
  const missing = Array.from({ length: n }, (_, i) => i).filter((i) => !byIndex.has(i));
  if (missing.length) {
    const list = missing.length > 5 ? `${missing.slice(0, 5).join(', ')}, ... (${missing.length} in all)` : missing.join(', ');
    throw new UsageError(
      `shard${missing.length > 1 ? 's' : ''} ${list} of ${n} missing (${parts.length} parts given); run eval fid --shard i/${n} --save-partial for each`,
    );
  }
  return parts.sort((a, b) => a.shard.index - b.shard.index).map((x) => x.p);
}

/** `causalfusion eval merge parts/*.npz --real ...`: the shards' partial statistics -> the FID of all images. */
export function registerEvalMerge(evalCmd: Command): void {
  evalCmd
    .command('merge')
    .description('merge the partial statistics of eval fid --shard i/N --save-partial into the FID of all images (as eval fid prints it)')
    .argument('<parts...>', 'the .npz of every shard, each once (any order)')
    .option(
      '--real <dir|stats.npz>',
      'reference images (folder) or statistics (.npz), as for eval fid; omit with --save-stats to only save the merged statistics',
    )
    .option('--features <inception.onnx|mnist>', 'feature network for a --real folder: the one the shards used', 'mnist')
    .option('--batch-size <n>', `images per network call for a --real folder (at most ${LIMITS.fidBatch})`)
    .option('--save-stats <out.npz>', 'write the merged statistics (mu, sigma) of all shards as pytorch-fid .npz')
    .option('--eps-fallback <mode>', "'auto' (reproduces pytorch-fid/ADM), 'never' or 'always'", 'auto')
    .option('--json', 'print the result as JSON')
    .action(async (files: string[], opts: MergeCliOptions) => {
      checkEpsFallback(opts.epsFallback);
      const batchSize = opts.batchSize === undefined ? undefined : boundedInt(opts.batchSize, '--batch-size', LIMITS.fidBatch);
      if (opts.real === undefined && opts.saveStats === undefined)
        throw new UsageError('--real is required (or give --save-stats to only save the merged statistics)');
      if (opts.saveStats !== undefined) checkNpzOut(opts.saveStats, '--save-stats', 'the statistics are a pytorch-fid .npz');
      const parts = readShards(files);
      const merged = mergePartials(parts);
      if (merged.count < 2) throw new UsageError(`the shards hold ${merged.count} image${merged.count === 1 ? '' : 's'} in all; a covariance needs at least 2`);
      const fake: StatisticsResult = { stats: merged.toStats(), from: 'images', count: merged.count };
      if (opts.saveStats) {
        saveStatsNpz(opts.saveStats, fake.stats);
        console.error(`saved the merged statistics of ${parts.length} shards (${merged.count} images, ${merged.dim}-d) to ${opts.saveStats}`);
      }
      if (opts.real === undefined) return;
      const features = parts[0].shard?.features ?? null;
      const extractor = holdsImages(opts.real, '--real') ? await fromPackage(() => createExtractor(opts.features)) : undefined;
      if (extractor && features !== null && extractor.name !== features) {
        await extractor.dispose?.();
        throw new UsageError(
          `--features: the shards used ${features} features, --features ${opts.features} gives ${extractor.name}; use the shards' network for --real`,
        );
      }
      let real: StatisticsResult;
      try {
        real = await fromPackage(() => computeStatistics(opts.real!, { extractor, batchSize, onProgress: progressBar('real') }));
      } finally {
        await extractor?.dispose?.();
      }
      const label = `the ${parts.length} shards (${path.dirname(files[0])}${parts.length > 1 ? ', ...' : ''})`;
      await reportFid(real, fake, { real: opts.real, fake: label }, opts, features ?? extractor?.name ?? null);
    });
}
