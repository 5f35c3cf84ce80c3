import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vm from 'node:vm';
import { frechetDistance, type GaussianStats } from './frechet';
import { FeatureStatistics } from './statistics';

// onnxruntime-node hands back typed arrays of Node's main realm; jest runs tests in a separate realm whose
// Float64Array fails onnxruntime-common's instanceof checks. Use the main realm's constructors here.
for (const name of [
  'Float32Array',
  'Float64Array',
  'Int32Array',
  'BigInt64Array',
  'Uint8Array',
  'Int8Array',
  'Uint16Array',
  'Int16Array',
  'Uint32Array',
  'BigUint64Array',
]) {
  (globalThis as Record<string, unknown>)[name] = vm.runInThisContext(name);
}

const REF = path.resolve(__dirname, '../../../../../shared/reference/frechet.json');

interface Case {
  name: string;
  kind: 'stats' | 'features';
  mu1: number[];
  sigma1: number[][];
  mu2: number[];
  sigma2: number[][];
  features1?: number[][];
  features2?: number[][];
  expected: { frechet_distance: number; eps_fallback_triggered: boolean };
  variants: { always_eps_offset: number; symmetric_eigh_clipped: number; trace_sigma1: number };
}
const ref = JSON.parse(fs.readFileSync(REF, 'utf8')) as { cases: Case[] };

function stats(mu: number[], sigma: number[][]): GaussianStats {
  return { mu: Float64Array.from(mu), sigma: Float64Array.from(sigma.flat()), dim: mu.length };
}

/** 1e-6 relative; for the ~0 identical-statistics cases the scale is the traces (the terms that cancel). */
function expectClose(actual: number, expected: number, scale: number): void {
  expect(Math.abs(actual - expected)).toBeLessThanOrEqual(1e-6 * Math.max(Math.abs(expected), 1e-6 * scale));
}

describe('frechetDistance matches pytorch-fid / ADM (frechet.json)', () => {
  for (const c of ref.cases) {
    test(c.name, async () => {
      const a = stats(c.mu1, c.sigma1);
      const b = stats(c.mu2, c.sigma2);
      const scale = c.variants.trace_sigma1;
      for (const backend of ['js', 'onnxruntime'] as const) {
        const r = await frechetDistance(a, b, { backend });
        expectClose(r.distance, c.expected.frechet_distance, scale);
        expect(r.epsFallback).toBe(c.expected.eps_fallback_triggered);
      }
      expectClose((await frechetDistance(a, b, { epsFallback: 'always' })).distance, c.variants.always_eps_offset, scale);
      expectClose((await frechetDistance(a, b, { epsFallback: 'never' })).distance, c.variants.symmetric_eigh_clipped, scale);
    });
  }
});

describe('frechetDistance on larger statistics', () => {
  /** Covariance of `rows` deterministic pseudo-random features (full rank when rows > dim). */
  function randomStats(dim: number, rows: number, seed: number): GaussianStats {
    let s = seed;
    const next = () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 4294967296 - 0.5;
    const x = Array.from({ length: rows * dim }, next);
    const mu = new Float64Array(dim);
    for (let i = 0; i < rows; i++) for (let j = 0; j < dim; j++) mu[j] += x[i * dim + j] / rows;
    const sigma = new Float64Array(dim * dim);
    for (let i = 0; i < rows; i++) {
      for (let j = 0; j < dim; j++) {
        const a = x[i * dim + j] - mu[j];
        for (let k = 0; k < dim; k++) sigma[j * dim + k] += (a * (x[i * dim + k] - mu[k])) / (rows - 1);
      }
    }
    return { mu, sigma, dim };
  }

  test('300-d: onnxruntime blocks (band reduction, offset sub-blocks) agree with plain JavaScript', async () => {
    const a = randomStats(300, 400, 1);
    const b = randomStats(300, 400, 2);
    const js = await frechetDistance(a, b, { backend: 'js' });
    const ort = await frechetDistance(a, b, { backend: 'onnxruntime' });
    expect(js.rank1).toBe(300);
    expect(js.epsFallback).toBe(false);
    expect(Math.abs(ort.distance - js.distance)).toBeLessThan(1e-11 * js.distance);
    // Same value through the exact-eigenvalue route on the product itself: tr sqrt is symmetric in S1, S2.
    const swapped = await frechetDistance(b, a, { backend: 'js' });
    expect(Math.abs(swapped.distance - js.distance)).toBeLessThan(1e-10 * js.distance);
  });

  test('statistics of different dimensions are rejected', async () => {
    const a = randomStats(3, 5, 1);
    const b = randomStats(4, 6, 2);
    await expect(frechetDistance(a, b)).rejects.toThrow(/different dimensions: 3 vs 4/);
  });
});
