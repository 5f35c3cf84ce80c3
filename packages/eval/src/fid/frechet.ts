/**
 * The Frechet distance between two Gaussians, as pytorch-fid's calculate_frechet_distance and the ADM
 * evaluator compute it:
 *
 *   FID = |mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr sqrt(S1 S2)
 *
 * The references take sqrtm(S1 S2) with scipy and, when that matrix has a non-finite entry, retry with
 * S1 + eps I and S2 + eps I (eps = 1e-6). Here tr sqrt(S1 S2) is the sum of square roots of the
 * eigenvalues of F^T S2 F (S1 = F F^T, pivoted Cholesky), which is what scipy's sqrtm returns whenever it
 * succeeds. Whether scipy's Schur-based sqrtm fails is a matter of rounding in the Schur form, so the
 * fallback needs a rule of its own (see `epsFallback`).
 */
import { autoMatMul, type MatMul } from './matmul';
import { pivotedCholesky, symmetricEigenvalues } from './linalg';

/** Mean and covariance of a feature distribution (covariance row-major dim x dim, float64). */
export interface GaussianStats {
  readonly mu: Float64Array;
  readonly sigma: Float64Array;
  readonly dim: number;
}

export interface FrechetOptions {
  /** Offset added to both diagonals by the fallback; pytorch-fid and ADM use 1e-6. */
  eps?: number;
  /**
   * - 'auto' (default): retry with the eps offset when the product loses rank beyond its factors,
   *   rank(S1 S2) < min(rank S1, rank S2). This reproduces every case of pytorch-fid/ADM under scipy >= 1.16.
   * - 'never': tr sqrt from the exact eigenvalues (the "symmetric_eigh_clipped" reference variant).
   * - 'always': always offset (the "always_eps_offset" variant).
   */
  epsFallback?: 'auto' | 'never' | 'always';
  /** Matrix products: 'auto' uses onnxruntime for large matrices, 'js' never loads native code. */
  backend?: 'auto' | 'js' | 'onnxruntime';
}

export interface FrechetResult {
  /** The Frechet distance (may be a tiny negative number for identical statistics, like the references). */
  distance: number;
  /** Whether the eps offset was used. */
  epsFallback: boolean;
  /** |mu1 - mu2|^2 */
  meanTerm: number;
  traceSigma1: number;
  traceSigma2: number;
  /** tr sqrt(S1 S2), of the offset matrices when the fallback fired. */
  traceSqrtProduct: number;
  /** Numerical ranks of S1 and S1 S2 (without offset; pivoted Cholesky / eigenvalue tolerance n eps max). */
  rank1: number;
  rankProduct: number;
  /** Rank of S2, computed only when rankProduct < rank1 (otherwise the fallback rule cannot fire). */
  rank2?: number;
}

export function checkStats(s: GaussianStats, label: string): void {
  if (!Number.isInteger(s.dim) || s.dim < 1) throw new Error(`${label}: dimension ${s.dim} is not a positive integer`);
  if (s.mu.length !== s.dim) throw new Error(`${label}: mu has ${s.mu.length} entries, expected dim = ${s.dim}`);
  if (s.sigma.length !== s.dim * s.dim) {
    throw new Error(`${label}: sigma has ${s.sigma.length} entries, expected dim^2 = ${s.dim * s.dim} (a ${s.dim}x${s.dim} covariance)`);
  }
  for (let i = 0; i < s.mu.length; i++) if (!Number.isFinite(s.mu[i])) throw new Error(`${label}: mu[${i}] is ${s.mu[i]}; statistics must be finite`);
  for (let i = 0; i < s.sigma.length; i++) {
    if (!Number.isFinite(s.sigma[i])) throw new Error(`${label}: sigma[${Math.floor(i / s.dim)}][${i % s.dim}] is ${s.sigma[i]}; statistics must be finite`);
  }
}

interface TraceSqrt {
  traceSqrt: number;
  rank1: number;
  rank2?: number;
  rankProduct: number;
}

/** tr sqrt(S1 S2) = sum sqrt(max(0, eig(F^T S2 F))), plus the ranks the fallback rule needs. */
async function traceSqrtProduct(s1: Float64Array, s2: Float64Array, n: number, mm: MatMul): Promise<TraceSqrt> {
  const c1 = await pivotedCholesky(s1, n, mm);
  const r = c1.rank;
  if (r === 0) return { traceSqrt: 0, rank1: 0, rank2: (await pivotedCholesky(s2, n, mm)).rank, rankProduct: 0 };
  const m = await congruence(c1.lower, c1.perm, s2, n, r, mm);
  // Symmetrise: rounding makes F^T (S2 F) very slightly asymmetric.
  for (let i = 0; i < r; i++) {
    for (let j = 0; j < i; j++) {
      const x = 0.5 * (m[i * r + j] + m[j * r + i]);
      m[i * r + j] = x;
      m[j * r + i] = x;
    }
  }
  const eig = await symmetricEigenvalues(m, r, mm);
  const maxEig = eig.length > 0 ? Math.max(Math.abs(eig[0]), Math.abs(eig[eig.length - 1])) : 0;
  const tol = r * Number.EPSILON * maxEig;
  let traceSqrt = 0;
  let rankProduct = 0;
  for (const lambda of eig) {
    if (lambda > 0) traceSqrt += Math.sqrt(lambda);
    if (lambda > tol) rankProduct++;
  }
  // rank S2 only matters when the product lost rank against S1 (the fallback rule compares with both).
  const rank2 = rankProduct < r ? (await pivotedCholesky(s2, n, mm)).rank : undefined;
  return { traceSqrt, rank1: r, rank2, rankProduct };
}

/**
 * M = L^T P^T S2 P L (r x r) for the pivoted Cholesky factor L (n x r, lower trapezoidal) of S1, with half
 * the multiply-adds of two dense products: column block J of L is zero above row j0, so
 * (L^T S2p)[J, :] = L[j0:, J]^T S2p[j0:, :] and, M being symmetric, M[J, :] = L[j0:, J]^T (S2p L)[j0:, :].
 */
async function congruence(l: Float64Array, perm: Int32Array, s2: Float64Array, n: number, r: number, mm: MatMul): Promise<Float64Array> {
  const s2p = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    const row = perm[i] * n;
    for (let j = 0; j < n; j++) s2p[i * n + j] = s2[row + perm[j]];
  }
  const block = 256;
  const blockOf = (j0: number, j1: number): Float64Array => {
    // L[j0:, j0:j1]^T, compact (j1 - j0) x (n - j0)
    const out = new Float64Array((j1 - j0) * (n - j0));
    for (let i = j0; i < n; i++) for (let c = j0; c < j1; c++) out[(c - j0) * (n - j0) + i - j0] = l[i * r + c];
    return out;
  };
  const x = new Float64Array(n * r); // S2p L
  for (let j0 = 0; j0 < r; j0 += block) {
    const j1 = Math.min(r, j0 + block);
    const rows = await mm.mul(blockOf(j0, j1), s2p.subarray(j0 * n), j1 - j0, n - j0, n); // rows J of L^T S2p
    for (let c = j0; c < j1; c++) for (let i = 0; i < n; i++) x[i * r + c] = rows[(c - j0) * n + i];
  }
  const m = new Float64Array(r * r);
  for (let j0 = 0; j0 < r; j0 += block) {
    const j1 = Math.min(r, j0 + block);
    m.set(await mm.mul(blockOf(j0, j1), x.subarray(j0 * r), j1 - j0, n - j0, r), j0 * r);
  }
  return m;
}

/** Frechet distance between two Gaussians; see FrechetOptions for the eps fallback. */
export async function frechetDistance(a: GaussianStats, b: GaussianStats, options: FrechetOptions = {}): Promise<FrechetResult> {
  checkStats(a, 'first statistics');
  checkStats(b, 'second statistics');
  if (a.dim !== b.dim) {
    throw new Error(`statistics have different dimensions: ${a.dim} vs ${b.dim}; compute both with the same feature extractor`);
  }
  const eps = options.eps ?? 1e-6;
  const mode = options.epsFallback ?? 'auto';
  if (!['auto', 'never', 'always'].includes(mode)) throw new Error(`epsFallback must be 'auto', 'never' or 'always', got '${mode}'`);
  const mm = autoMatMul(options.backend ?? 'auto');
  const n = a.dim;
  let meanTerm = 0;
  for (let i = 0; i < n; i++) {
    const d = a.mu[i] - b.mu[i];
    meanTerm += d * d;
  }
  let traceSigma1 = 0;
  let traceSigma2 = 0;
  for (let i = 0; i < n; i++) {
    traceSigma1 += a.sigma[i * n + i];
    traceSigma2 += b.sigma[i * n + i];
  }
  const plain = await traceSqrtProduct(a.sigma, b.sigma, n, mm);
  const fallback = mode === 'always' || (mode === 'auto' && plain.rank2 !== undefined && plain.rankProduct < Math.min(plain.rank1, plain.rank2));
  let traceSqrt = plain.traceSqrt;
  if (fallback) {
    const s1 = Float64Array.from(a.sigma);
    const s2 = Float64Array.from(b.sigma);
    for (let i = 0; i < n; i++) {
      s1[i * n + i] += eps;
      s2[i * n + i] += eps;
    }
    traceSqrt = (await traceSqrtProduct(s1, s2, n, mm)).traceSqrt;
  }
  return {
    distance: meanTerm + traceSigma1 + traceSigma2 - 2 * traceSqrt,
    epsFallback: fallback,
    meanTerm,
    traceSigma1,
    traceSigma2,
    traceSqrtProduct: traceSqrt,
    rank1: plain.rank1,
    ...(plain.rank2 !== undefined ? { rank2: plain.rank2 } : {}),
    rankProduct: plain.rankProduct,
  };
}
