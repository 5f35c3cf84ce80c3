import { jsMatMul } from './matmul';
import { bandToTridiagonal, pivotedCholesky, symmetricEigenvalues, tridiagonalEigenvalues } from './linalg';

/** Deterministic uniform numbers in [-0.5, 0.5). */
function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 4294967296 - 0.5;
  };
}

/** Q diag(lambda) Q^T with Q a product of random Householder reflectors: eigenvalues known exactly. */
function withSpectrum(lambda: number[], seed: number): Float64Array {
  const n = lambda.length;
  const rnd = lcg(seed);
  const a = new Float64Array(n * n);
  for (let i = 0; i < n; i++) a[i * n + i] = lambda[i];
  for (let h = 0; h < 3; h++) {
    const v = Array.from({ length: n }, rnd);
    const vv = v.reduce((s, x) => s + x * x, 0);
    // A <- H A H with H = I - 2 v v^T / v.v
    const av = new Float64Array(n);
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) av[i] += a[i * n + j] * v[j];
    const vav = v.reduce((s, x, i) => s + x * av[i], 0);
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < n; j++) {
        a[i * n + j] += (-2 * (av[i] * v[j] + v[i] * av[j])) / vv + (4 * vav * v[i] * v[j]) / (vv * vv);
      }
    }
  }
  return a;
}

describe('symmetric eigenvalues', () => {
  test.each([
    [1, 32],
    [2, 32],
    [7, 32],
    [40, 4],
    [97, 8],
    [150, 16],
  ])('n=%i recovers a known spectrum (band path when n > 4 * bandwidth=%i)', async (n, bw) => {
    const lambda = Array.from({ length: n }, (_, i) => (i % 3 === 0 ? 0 : Math.exp(-i / 10) * (i % 2 ? 1 : -1)));
    const a = withSpectrum(lambda, n);
    const got = await symmetricEigenvalues(a, n, jsMatMul, bw);
    const want = [...lambda].sort((x, y) => x - y);
    for (let i = 0; i < n; i++) expect(Math.abs(got[i] - want[i])).toBeLessThan(1e-13);
  });

  test('band -> tridiagonal keeps the spectrum of a random band matrix', () => {
    const n = 60;
    const b = 5;
    const rnd = lcg(3);
    const a = new Float64Array(n * n);
    for (let i = 0; i < n; i++) {
      for (let j = Math.max(0, i - b); j <= i; j++) {
        const x = rnd();
        a[i * n + j] = x;
        a[j * n + i] = x;
      }
    }
    const dense = bandToTridiagonal(Float64Array.from(a), n, n - 1);
    const banded = bandToTridiagonal(Float64Array.from(a), n, b);
    const e1 = tridiagonalEigenvalues(dense.diag, dense.offDiag);
    const e2 = tridiagonalEigenvalues(banded.diag, banded.offDiag);
    for (let i = 0; i < n; i++) expect(Math.abs(e1[i] - e2[i])).toBeLessThan(1e-13);
  });

  test('pivoted Cholesky reveals the rank and reproduces the matrix', async () => {
    const n = 30;
    const r = 7;
    const rnd = lcg(9);
    const g = Array.from({ length: n * r }, rnd);
    const s = new Float64Array(n * n);
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) for (let k = 0; k < r; k++) s[i * n + j] += g[i * r + k] * g[j * r + k];
    const { factor, rank } = await pivotedCholesky(s, n, jsMatMul, 4);
    expect(rank).toBe(r);
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < n; j++) {
        let x = 0;
        for (let k = 0; k < rank; k++) x += factor[i * rank + k] * factor[j * rank + k];
        expect(Math.abs(x - s[i * n + j])).toBeLessThan(1e-12);
      }
    }
  });
});
