/**
 * Partial FID statistics of one shard of a sharded evaluation, as an .npz: `partial_count` [1],
 * `partial_mean` [dim] and `partial_m2` [dim, dim] (float64 sums of centred outer products). Shards
 * merge exactly (float64, Chan et al.'s update) into the statistics of all their images. Optionally
 * `partial_shard` [i, N] (which shard of how many) and `partial_total` [T] (the images of all shards), so
 * that a merge can refuse duplicate, missing or mismatched shards.
 */
import { readNpz, writeNpz, type NpyArray } from './npz';
import type { PartialStatistics } from './statistics';

/** Which shard a partial holds: shard `index` (0-based) of `count`, out of `total` images in all. */
export interface ShardInfo {
  index: number;
  count: number;
  total: number;
  /** The feature extractor's name (FeatureExtractor.name), so shards of different networks are not merged. */
  features?: string;
}

/** Partial statistics with the shard they came from (when recorded). */
export interface ShardPartial extends PartialStatistics {
  shard?: ShardInfo;
}

/** Write a shard's partial statistics (atomically); `shard` adds `partial_shard` and `partial_total`. */
export function savePartialNpz(file: string, p: PartialStatistics, shard?: ShardInfo): void {
  if (shard) checkShard(shard, file);
  writeNpz(file, {
    partial_count: { data: Float64Array.of(p.count), shape: [1] },
    partial_mean: { data: p.mean, shape: [p.dim] },
    partial_m2: { data: p.m2, shape: [p.dim, p.dim] },
    ...(shard
      ? {
          partial_shard: { data: Float64Array.of(shard.index, shard.count), shape: [2] },
          partial_total: { data: Float64Array.of(shard.total), shape: [1] },
          ...(shard.features !== undefined
            ? { partial_features: { data: new Uint8Array(Buffer.from(shard.features, 'utf8')), shape: [Buffer.byteLength(shard.features, 'utf8')] } }
            : {}),
        }
      : {}),
  });
}

function checkShard(s: ShardInfo, file: string): void {
  const ok = [s.index, s.count, s.total].every((v) => Number.isSafeInteger(v) && v >= 0) && s.count >= 1 && s.index < s.count;
  if (!ok) throw new Error(`${file}: shard ${s.index}/${s.count} of ${s.total} images is not a shard (0 <= i < N, N >= 1, total >= 0)`);
}

/** Read a shard's partial statistics; an .npz without them is an Error saying what it holds. */
export function readPartialNpz(file: string): ShardPartial {
  const arrays = readNpz(file);
  const count = arrays.get('partial_count');
  const mean = arrays.get('partial_mean');
  const m2 = arrays.get('partial_m2');
  if (!count || !mean || !m2) {
    throw new Error(
      `${file}: not the partial statistics of a shard (needs partial_count, partial_mean, partial_m2; found ${[...arrays.keys()].join(', ') || 'nothing'}); write them with eval fid --shard i/N`,
    );
  }
  const d = mean.shape[0];
  if (count.data.length !== 1 || mean.shape.length !== 1 || m2.shape.length !== 2 || m2.shape[0] !== d || m2.shape[1] !== d) {
    throw new Error(`${file}: partial statistics of inconsistent shapes (count [${count.shape}], mean [${mean.shape}], m2 [${m2.shape}])`);
  }
  if (mean.dtype !== 'float64' || m2.dtype !== 'float64') throw new Error(`${file}: partial statistics must be float64`);
  const n = count.data[0];
  if (!Number.isSafeInteger(n) || n < 0) throw new Error(`${file}: partial_count is ${n}, not a count`);
  for (const a of [mean.data, m2.data])
    for (let i = 0; i < a.length; i++) if (!Number.isFinite(a[i])) throw new Error(`${file}: partial statistics hold ${a[i]}`);
  const out: ShardPartial = { dim: d, count: n, mean: Float64Array.from(mean.data), m2: Float64Array.from(m2.data) };
  const shard = readShard(file, arrays.get('partial_shard'), arrays.get('partial_total'));
  const features = arrays.get('partial_features');
  if (features) {
    if (!shard) throw new Error(`${file}: partial_features without partial_shard`);
    if (features.dtype !== 'uint8' || features.shape.length !== 1)
      throw new Error(`${file}: partial_features must be uint8 text, got ${features.dtype} [${features.shape}]`);
    shard.features = Buffer.from(features.data).toString('utf8');
  }
  if (shard) {
    if (n > shard.total) throw new Error(`${file}: shard ${shard.index}/${shard.count} holds ${n} images, more than the ${shard.total} of all shards`);
    out.shard = shard;
  }
  return out;
}

function readShard(file: string, shard: NpyArray | undefined, total: NpyArray | undefined): ShardInfo | undefined {
  if (!shard && !total) return undefined;
  if (!shard || !total || shard.data.length !== 2 || total.data.length !== 1) {
    throw new Error(
      `${file}: partial_shard must be [i, N] and partial_total [T], both present (found ${shard ? `[${shard.shape}]` : 'no partial_shard'}, ${total ? `[${total.shape}]` : 'no partial_total'})`,
    );
  }
  const info: ShardInfo = { index: shard.data[0], count: shard.data[1], total: total.data[0] };
  checkShard(info, file);
  return info;
}
