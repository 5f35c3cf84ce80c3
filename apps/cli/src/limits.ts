/**
 * The largest counts the commands accept (documented in apps/cli/README.md, "Limits"). Every count flag is
 * checked against its maximum before any work starts, so an oversized request is one line with exit code 2
 * instead of memory growing until the machine swaps. Everything a call holds grows with these counts (the
 * sampler's batch and KV cache, the decoded images, the written grid), so each is bounded.
 */
import { UsageError } from './errors';

export const LIMITS = {
  /** Images one `sample` / `edit` call draws: classes x --num (the sampler holds them as one batch). */
  images: 1024,
  /**
   * Images one `sample --out-dir` run draws over all its shards (classes x --num). Each image is written to
   * its own file as its batch finishes, so memory is bounded by `--batch-size` (at most {@link images}), not
   * by this total; it bounds the six-digit file names (000000.png .. 999999.png) and the disk.
   */
  dirImages: 1_000_000,
  /** `--shard i/N`: N. */
  shards: 100_000,
  /** `--zoom` of every command that writes images. */
  zoom: 16,
  /** `--threads` and `--workers` (onnxruntime threads, worker threads). */
  threads: 64,
  /** `generate --num`. */
  generateImages: 256,
  /** `caption --num` (captions per image). */
  captions: 64,
  /** Images in one `caption --input` grid (cells). */
  captionCells: 256,
  /** `decode --num`. */
  decodeImages: 1024,
  /** `encode --batch` (images per encoder call; the cache is written batch by batch, `--limit` is unbounded). */
  encodeBatch: 1024,
  /** `eval fid --batch-size`. */
  fidBatch: 1024,
  /** `vae init --image-size`. */
  vaeImageSize: 4096,
  /** Pixels of an image a command writes (width x height) or reads (`--input`, `--mask`). */
  imagePixels: 64 * 1024 * 1024,
} as const;

/** The side a written image may have, per format (libjpeg: 65535, libwebp: 16383; PNG kept to JPEG's). */
export const MAX_SIDE = { png: 65535, jpeg: 65535, webp: 16383 } as const;

/**
 * A positive integer flag with a documented maximum: `--num: expected a positive integer, got '...'`, or,
 * over the limit, a line that names the limit and what to do instead.
 */
export function boundedInt(value: string, flag: string, max: number, hint = ''): number {
  const n = Number(value);
  if (!/^\s*\d+\s*$/.test(value) || !Number.isSafeInteger(n) || n < 1) {
    throw new UsageError(`${flag}: expected a positive integer, got '${value}'`);
  }
  if (n > max) throw new UsageError(`${flag}: ${value} is over the limit of ${max}${hint ? `; ${hint}` : ''}`);
  return n;
}
