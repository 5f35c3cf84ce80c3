/**
 * Streaming mean and covariance of feature rows, in float64, without keeping the features: each batch is
 * centred on its own mean, its scatter X^T X is one matrix product, and batches are merged with Chan et
 * al.'s pairwise update (M2 = M2a + M2b + d d^T na nb / n). The result equals np.mean(axis=0) and
 * np.cov(rowvar=False) (ddof = 1) of all rows up to float64 rounding.
 */
import type { GaussianStats } from './frechet';
import { autoMatMul, type MatMul } from './matmul';

export class FeatureStatistics {
  readonly dim: number;
  private n = 0;
  private readonly mean: Float64Array;
  private readonly m2: Float64Array; // sum of centred outer products
  private readonly mm: MatMul;

  constructor(dim: number, options: { backend?: 'auto' | 'js' | 'onnxruntime' } = {}) {
    if (!Number.isInteger(dim) || dim < 1) throw new Error(`feature dimension must be a positive integer, got ${dim}`);
    this.dim = dim;
    this.mean = new Float64Array(dim);
    this.m2 = new Float64Array(dim * dim);
    this.mm = autoMatMul(options.backend ?? 'auto');
  }

  /** Number of rows seen so far. */
  get count(): number {
    return this.n;
  }

  /** Adds `features.length / dim` rows (row-major). */
  async add(features: ArrayLike<number>): Promise<void> {
    const d = this.dim;
    if (features.length % d !== 0) {
      throw new Error(`feature batch has ${features.length} values, not a multiple of the dimension ${d}; check the extractor's dim`);
    }
    const rows = features.length / d;
    if (rows === 0) return;
    const batchMean = new Float64Array(d);
    for (let i = 0; i < rows; i++) {
      for (let j = 0; j < d; j++) {
        const x = features[i * d + j];
        if (!Number.isFinite(x)) throw new Error(`feature row ${this.n + i}, column ${j} is ${x}; features must be finite`);
        batchMean[j] += x;
      }
    }
    for (let j = 0; j < d; j++) batchMean[j] /= rows;
    // Centred batch, transposed copy for X^T X.
    const xc = new Float64Array(rows * d);
    const xct = new Float64Array(d * rows);
    for (let i = 0; i < rows; i++) {
      for (let j = 0; j < d; j++) {
        const x = features[i * d + j] - batchMean[j];
        xc[i * d + j] = x;
        xct[j * rows + i] = x;
      }
    }
    const scatter = await this.mm.mul(xct, xc, d, rows, d);
    const na = this.n;
    const total = na + rows;
    const f = (na * rows) / total;
    for (let j = 0; j < d; j++) {
      const dj = batchMean[j] - this.mean[j];
      for (let k = 0; k < d; k++) this.m2[j * d + k] += scatter[j * d + k] + f * dj * (batchMean[k] - this.mean[k]);
    }
    for (let j = 0; j < d; j++) this.mean[j] += ((batchMean[j] - this.mean[j]) * rows) / total;
    this.n = total;
  }

  /**
   * The running sums as they are (count, mean, sum of centred outer products): what a shard of a sharded
   * evaluation writes, to be merged exactly with the other shards' ({@link merge}).
   */
  partial(): PartialStatistics {
    return { dim: this.dim, count: this.n, mean: Float64Array.from(this.mean), m2: Float64Array.from(this.m2) };
  }

  /** Add another accumulator's rows, given as its {@link partial} (Chan et al.'s pairwise update, float64). */
  merge(other: PartialStatistics): void {
    const d = this.dim;
    if (other.dim !== d || other.mean.length !== d || other.m2.length !== d * d) {
      throw new Error(`cannot merge statistics of dimension ${other.dim} into dimension ${d}; the shards used different feature extractors`);
    }
    if (!Number.isSafeInteger(other.count) || other.count < 0) throw new Error(`a partial statistics count must be a non-negative integer, got ${other.count}`);
    if (other.count === 0) return;
    const na = this.n;
    const nb = other.count;
    const total = na + nb;
    const f = (na * nb) / total;
    for (let j = 0; j < d; j++) {
      const dj = other.mean[j] - this.mean[j];
      for (let k = 0; k < d; k++) this.m2[j * d + k] += other.m2[j * d + k] + f * dj * (other.mean[k] - this.mean[k]);
    }
    for (let j = 0; j < d; j++) this.mean[j] += ((other.mean[j] - this.mean[j]) * nb) / total;
    this.n = total;
  }

  /** Mean and unbiased covariance (like np.cov); needs at least 2 rows. */
  toStats(): GaussianStats {
    if (this.n < 2) {
      throw new Error(`a covariance needs at least 2 feature rows, got ${this.n}; add more images`);
    }
    const sigma = new Float64Array(this.dim * this.dim);
    for (let i = 0; i < sigma.length; i++) sigma[i] = this.m2[i] / (this.n - 1);
    return { mu: Float64Array.from(this.mean), sigma, dim: this.dim };
  }
}

/** The running sums of a FeatureStatistics: count, mean and the sum of centred outer products, float64. */
export interface PartialStatistics {
  dim: number;
  count: number;
  mean: Float64Array;
  m2: Float64Array;
}

/** Merge the partial statistics of shards (in the order given) into one accumulator. */
export function mergePartials(parts: PartialStatistics[]): FeatureStatistics {
  if (parts.length === 0) throw new Error('no partial statistics to merge');
  const acc = new FeatureStatistics(parts[0].dim, { backend: 'js' });
  for (const p of parts) acc.merge(p);
  return acc;
}

/** Statistics of a whole feature matrix (rows = samples). */
export async function statisticsOf(
  features: ArrayLike<number>,
  dim: number,
  options: { backend?: 'auto' | 'js' | 'onnxruntime' } = {},
): Promise<GaussianStats> {
  const acc = new FeatureStatistics(dim, options);
  await acc.add(features);
  return acc.toStats();
}
