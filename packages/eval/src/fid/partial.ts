/**
 * Partial FID statistics of one shard of a sharded evaluation, as an .npz: `partial_count` [1],
 * `partial_mean` [dim] and `partial_m2` [dim, dim] (float64 sums of centred outer products). Shards
 * merge exactly (float64, Chan et al.'s update) into the statistics of all their images.
 */
import { readNpz, writeNpz } from './npz';
import type { PartialStatistics } from './statistics';

/** Write a shard's partial statistics (atomically). */
export function savePartialNpz(file: string, p: PartialStatistics): void {
  writeNpz(file, {
    partial_count: { data: Float64Array.of(p.count), shape: [1] },
    partial_mean: { data: p.mean, shape: [p.dim] },
    partial_m2: { data: p.m2, shape: [p.dim, p.dim] },
  });
}

/** Read a shard's partial statistics; an .npz without them is an Error saying what it holds. */
export function readPartialNpz(file: string): PartialStatistics {
  const arrays = readNpz(file);
  const count = arrays.get('partial_count');
  const mean = arrays.get('partial_mean');
  const m2 = arrays.get('partial_m2');
  if (!count || !mean || !m2) {
    throw new Error(`${file}: not the partial statistics of a shard (needs partial_count, partial_mean, partial_m2; found ${[...arrays.keys()].join(', ') || 'nothing'}); write them with eval fid --shard i/N`);
  }
  const d = mean.shape[0];
  if (count.data.length !== 1 || mean.shape.length !== 1 || m2.shape.length !== 2 || m2.shape[0] !== d || m2.shape[1] !== d) {
    throw new Error(`${file}: partial statistics of inconsistent shapes (count [${count.shape}], mean [${mean.shape}], m2 [${m2.shape}])`);
  }
  if (mean.dtype !== 'float64' || m2.dtype !== 'float64') throw new Error(`${file}: partial statistics must be float64`);
  const n = count.data[0];
  if (!Number.isSafeInteger(n) || n < 0) throw new Error(`${file}: partial_count is ${n}, not a count`);
  for (const a of [mean.data, m2.data]) for (let i = 0; i < a.length; i++) if (!Number.isFinite(a[i])) throw new Error(`${file}: partial statistics hold ${a[i]}`);
  return { dim: d, count: n, mean: Float64Array.from(mean.data), m2: Float64Array.from(m2.data) };
}
