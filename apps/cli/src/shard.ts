/**
 * Sharded sampling and evaluation: `--shard i/N` splits T items (images to draw, image files to evaluate)
 * into N contiguous index ranges, shard i taking [floor(i*T/N), floor((i+1)*T/N)). The ranges cover 0..T-1
 * once each, differ in size by at most one, and depend on nothing but i, N and T, so any machine computes
 * the same split. `sample --out-dir` names each image by its global index and records the run in a
 * manifest, so that `eval fid --shard i/N` can take exactly the images `sample --shard i/N` wrote, even while
 * other shards are still drawing theirs.
 */
import * as fs from 'fs';
import * as path from 'path';
import { writeFileAtomic } from '@causalfusion/safetensors';
import { UsageError } from './errors';
import { LIMITS } from './limits';

export interface Shard {
  index: number;
  count: number;
}

/** `i/N` with 0 <= i < N, N >= 1 (at most {@link LIMITS.shards}). */
export function parseShard(value: string, flag = '--shard'): Shard {
  const m = /^\s*(\d+)\s*\/\s*(\d+)\s*$/.exec(value);
  const index = m ? Number(m[1]) : NaN;
  const count = m ? Number(m[2]) : NaN;
  if (!m || !Number.isSafeInteger(index) || !Number.isSafeInteger(count) || count < 1) {
    throw new UsageError(`${flag}: expected i/N (shard i of N, counted from 0), e.g. 0/4, got '${value}'`);
  }
  if (count > LIMITS.shards) throw new UsageError(`${flag}: ${count} shards is over the limit of ${LIMITS.shards}`);
  if (index >= count) throw new UsageError(`${flag}: shard ${index} of ${count} does not exist; shards are 0 to ${count - 1}`);
  return { index, count };
}

/** The contiguous range [start, end) of shard `s` of `total` items. */
export function shardRange(total: number, s: Shard): { start: number; end: number } {
  // exact in float64 for total * count < 2^53 (the limits keep both far below)
  return { start: Math.floor((s.index * total) / s.count), end: Math.floor(((s.index + 1) * total) / s.count) };
}

/** Digits of the file names `sample --out-dir` writes: 000000.png .. 999999.png (enough for LIMITS.dirImages). */
export const INDEX_DIGITS = String(LIMITS.dirImages - 1).length;

/** The file of image `index` in a `sample --out-dir` folder. */
export function indexFile(dir: string, index: number): string {
  return path.join(dir, `${String(index).padStart(INDEX_DIGITS, '0')}.png`);
}

/** The record `sample --out-dir` keeps in its folder (a hidden file: FID's image listing skips it). */
export const MANIFEST = '.causalfusion-samples.json';

export interface SamplesManifest {
  format: 'causalfusion-samples';
  /** Images the whole run (all shards) writes: indices 0..total-1. */
  total: number;
  /** Everything that decides the images (the model aside): two runs that differ here must not share a folder. */
  run: Record<string, unknown>;
}

export function readManifest(dir: string): SamplesManifest | undefined {
  const file = path.join(dir, MANIFEST);
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
  let m: SamplesManifest;
  try {
    m = JSON.parse(text) as SamplesManifest;
  } catch (e) {
    throw new UsageError(`${file}: not JSON (${(e as Error).message}); remove it, or use another folder`);
  }
  if (m?.format !== 'causalfusion-samples' || !Number.isSafeInteger(m.total) || m.total < 0 || typeof m.run !== 'object' || m.run === null) {
    throw new UsageError(`${file}: not a causalfusion sample record; remove it, or use another folder`);
  }
  return m;
}

/**
 * Record the run in `dir`, or check that the record already there (another shard's, or an earlier try of
 * this one) describes the same run: images of two different runs in one folder would give a FID of neither.
 */
export function claimOutDir(dir: string, manifest: SamplesManifest, flag = '--out-dir'): void {
  const old = readManifest(dir);
  if (old) {
    const a = { total: old.total, ...old.run };
    const b: Record<string, unknown> = { total: manifest.total, ...manifest.run };
    const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])];
    const differ = keys.filter((k) => JSON.stringify((a as Record<string, unknown>)[k]) !== JSON.stringify(b[k]));
    if (differ.length) {
      const what = differ.map((k) => `${k} ${JSON.stringify((a as Record<string, unknown>)[k])} there, ${JSON.stringify(b[k])} now`).join('; ');
      throw new UsageError(`${flag}: ${dir} holds the images of another run (${what}); use an empty folder, or the same flags`);
    }
    return;
  }
  writeFileAtomic(path.join(dir, MANIFEST), `${JSON.stringify(manifest, null, 2)}\n`);
}
