/**
 * FID end to end: a folder of images or an .npz (statistics, features or an ADM image batch) -> float64
 * statistics -> Frechet distance; Inception Score on the way when the extractor has logits.
 */
import * as fs from 'node:fs';
import type { FeatureExtractor, RgbImage } from './extractor';
import { frechetDistance, type FrechetOptions, type FrechetResult, type GaussianStats } from './frechet';
import { decodeImage, listImageFiles } from './images';
import { InceptionScoreAccumulator } from './inception-score';
import { readNpz, statsFromNpzArrays, type NpyArray } from './npz';
import { FeatureStatistics, statisticsOf, type PartialStatistics } from './statistics';

/** Called after every batch with the number of images done and the total. */
export type ProgressCallback = (done: number, total: number) => void;

export interface StatisticsOptions {
  /** Needed for image inputs (folders, ADM batches with images); unused for precomputed statistics. */
  extractor?: FeatureExtractor;
  /** Images per extractor call; default the extractor's batchSize, else 50. */
  batchSize?: number;
  onProgress?: ProgressCallback;
  /** Chunk size of the Inception Score (ADM: 5000). */
  isSplitSize?: number;
  backend?: 'auto' | 'js' | 'onnxruntime';
}

export interface StatisticsResult {
  stats: GaussianStats;
  /** How the statistics were obtained. */
  from: 'images' | 'statistics' | 'features';
  /** Number of images or feature rows (undefined for precomputed statistics). */
  count?: number;
  /** Inception Score of the images, when the extractor returns logits. */
  inceptionScore?: number;
}

/** Runs `extractor` over images produced by `load(i)`, accumulating statistics and Inception Score. */
export async function statisticsFromImages(
  total: number,
  load: (index: number) => Promise<RgbImage>,
  extractor: FeatureExtractor,
  options: StatisticsOptions = {},
): Promise<StatisticsResult> {
  if (total === 0) throw new Error('no images to compute statistics from');
  const { acc, is } = await accumulateImages(total, load, extractor, options);
  return { stats: acc.toStats(), from: 'images', count: total, ...(is ? { inceptionScore: is.score() } : {}) };
}

/**
 * The partial statistics (count, mean, centred outer products; float64) of the images `load(0..total-1)`:
 * one shard of a sharded evaluation, merged with the others by {@link mergePartials}. `total` may be 0 (an
 * empty shard). No Inception Score: it does not merge exactly across shards.
 */
export async function partialStatisticsFromImages(
  total: number,
  load: (index: number) => Promise<RgbImage>,
  extractor: FeatureExtractor,
  options: StatisticsOptions = {},
): Promise<PartialStatistics> {
  const { acc } = await accumulateImages(total, load, extractor, options);
  return acc.partial();
}

async function accumulateImages(
  total: number,
  load: (index: number) => Promise<RgbImage>,
  extractor: FeatureExtractor,
  options: StatisticsOptions,
): Promise<{ acc: FeatureStatistics; is?: InceptionScoreAccumulator }> {
  const batchSize = options.batchSize ?? extractor.batchSize ?? 50;
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new Error(`batch size must be a positive integer, got ${batchSize}`);
  const acc = new FeatureStatistics(extractor.dim, { backend: options.backend });
  let is: InceptionScoreAccumulator | undefined;
  for (let start = 0; start < total; start += batchSize) {
    const indices = Array.from({ length: Math.min(batchSize, total - start) }, (_, i) => start + i);
    const images = await Promise.all(indices.map(load));
    const batch = await extractor.extract(images);
    if (batch.features.length !== images.length * extractor.dim) {
      throw new Error(`extractor ${extractor.name} returned ${batch.features.length} values for ${images.length} images of dim ${extractor.dim}`);
    }
    await acc.add(batch.features);
    if (batch.logits && batch.numClasses) {
      is ??= new InceptionScoreAccumulator(batch.numClasses, options.isSplitSize);
      is.add(batch.logits);
    }
    options.onProgress?.(start + images.length, total);
  }
  return { acc, is };
}

/** Largest feature dimension read from an .npz (its covariance takes 8 * dim^2 bytes: 2 GB at 16384). */
const MAX_FEATURE_DIM = 16384;

/** Images of an ADM-style batch: uint8 [N, H, W, 3] (or [N, H, W] / [N, H, W, 1] grayscale). */
function imagesOfArray(array: NpyArray, label: string): { count: number; load: (i: number) => Promise<RgbImage> } {
  const [n, h, w, c = 1] = array.shape;
  if (array.dtype !== 'uint8' || array.shape.length < 3 || array.shape.length > 4 || (c !== 1 && c !== 3)) {
    throw new Error(`${label}: 'arr_0' has dtype ${array.dtype} and shape [${array.shape}]; expected uint8 images [N, H, W, 3] or float features [N, D]`);
  }
  // (N, 0, W, 3) holds no bytes whatever N is: without this, 2^32 empty images would be "read"
  if (n < 1 || h < 1 || w < 1) throw new Error(`${label}: 'arr_0' has shape [${array.shape}]; an image batch needs at least one image of at least 1x1 pixels`);
  const data = array.data as Uint8Array;
  return {
    count: n,
    async load(i) {
      const rgb = new Uint8Array(h * w * 3);
      const base = i * h * w * c;
      for (let p = 0; p < h * w; p++) {
        for (let k = 0; k < 3; k++) rgb[p * 3 + k] = data[base + p * c + (c === 3 ? k : 0)];
      }
      return { width: w, height: h, data: rgb };
    },
  };
}

/**
 * Statistics of `source`: a folder of images, or an .npz with `mu`/`sigma` (pytorch-fid, ADM reference
 * batches), float features `arr_0` [N, D], or uint8 images `arr_0` [N, H, W, 3] (ADM sample batches).
 */
export async function computeStatistics(source: string, options: StatisticsOptions = {}): Promise<StatisticsResult> {
  let stat: fs.Stats;
  try {
    stat = fs.statSync(source);
  } catch {
    throw new Error(`${source} does not exist; pass a folder of images or an .npz of statistics`);
  }
  const needExtractor = (): FeatureExtractor => {
    if (!options.extractor) throw new Error(`${source} holds images: a feature extractor is needed to compute its statistics`);
    return options.extractor;
  };
  if (stat.isDirectory()) {
    const files = listImageFiles(source);
    return statisticsFromImages(files.length, (i) => decodeImage(files[i]), needExtractor(), options);
  }
  if (!source.toLowerCase().endsWith('.npz')) throw new Error(`${source} is neither a folder of images nor an .npz file`);
  const arrays = readNpz(source);
  const stats = statsFromNpzArrays(arrays, source);
  if (stats) return { stats, from: 'statistics' };
  const arr0 = arrays.get('arr_0') as NpyArray;
  if (arr0.dtype !== 'uint8' && arr0.shape.length === 2) {
    const [rows, dim] = arr0.shape;
    if (rows < 2) throw new Error(`${source}: 'arr_0' has ${rows} feature rows; a covariance needs at least 2`);
    // the covariance is dim x dim float64: a small file of 2 x 100000 features would ask for 80 GB
    if (dim < 1 || dim > MAX_FEATURE_DIM)
      throw new Error(`${source}: 'arr_0' has ${dim} features per row; expected 1 to ${MAX_FEATURE_DIM} (Inception pool3 has 2048)`);
    try {
      return { stats: await statisticsOf(arr0.data, dim, { backend: options.backend }), from: 'features', count: rows };
    } catch (err) {
      throw new Error(`${source}: 'arr_0': ${(err as Error).message}`);
    }
  }
  const images = imagesOfArray(arr0, source);
  return statisticsFromImages(images.count, images.load, needExtractor(), options);
}

export interface FidResult extends FrechetResult {
  real: StatisticsResult;
  fake: StatisticsResult;
}

export type FidOptions = Omit<StatisticsOptions, 'onProgress'> &
  FrechetOptions & {
    /** Called after every batch of either source. */
    onProgress?: (done: number, total: number, which: 'real' | 'fake') => void;
  };

/** FID between two sources (folders or .npz), see computeStatistics. */
export async function computeFid(real: string, fake: string, options: FidOptions = {}): Promise<FidResult> {
  const progress = (which: 'real' | 'fake'): ProgressCallback | undefined => options.onProgress && ((done, total) => options.onProgress?.(done, total, which));
  const realStats = await computeStatistics(real, { ...options, onProgress: progress('real') });
  const fakeStats = await computeStatistics(fake, { ...options, onProgress: progress('fake') });
  if (realStats.stats.dim !== fakeStats.stats.dim) {
    throw new Error(
      `statistics of different dimensions: ${real} has ${realStats.stats.dim}, ${fake} has ${fakeStats.stats.dim}; use the same feature extractor for both`,
    );
  }
  const fid = await frechetDistance(realStats.stats, fakeStats.stats, options);
  return { ...fid, real: realStats, fake: fakeStats };
}
