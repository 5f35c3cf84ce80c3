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

/** Statistics of a whole feature matrix (rows = samples). */
export async function statisticsOf(features: ArrayLike<number>, dim: number, options: { backend?: 'auto' | 'js' | 'onnxruntime' } = {}): Promise<GaussianStats> {
  const acc = new FeatureStatistics(dim, options);
  await acc.add(features);
  return acc.toStats();
}
