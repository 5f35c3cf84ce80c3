#!/usr/bin/env node
// Benchmark of @causalfusion/eval's Frechet distance on 2048-d statistics (the InceptionV3 pool3 size).
//
// Two Gaussians come from synthetic features (6000 rows of correlated noise each, fixed seed) so the
// covariances are full rank and ill-conditioned like real pool3 statistics. We time frechetDistance with
// its defaults (onnxruntime matrix products, pivoted Cholesky + two-stage symmetric eigenvalues) at
// several sizes and compare with (a) the 10 s target and (b) the same algorithm with plain JavaScript
// products (the non-optimised route) at 512 and 1024, where it still runs in reasonable time.
// Run from the repository root: `pnpm bench:frechet` (builds the package first).
// Last line: `frechet-2048 seconds=<s>` (median of 3 runs).
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { availableParallelism } from 'node:os';

const root = new URL('../..', import.meta.url).pathname;
const pkgDir = join(root, 'packages/eval');
const require = createRequire(join(pkgDir, 'package.json'));
const { frechetDistance, FeatureStatistics } = require(join(pkgDir, 'dist/index.js'));

const TARGET_SECONDS = 10;
const ROUNDS = 3;

/** Deterministic standard-normal-ish numbers (sum of 4 uniforms, LCG). */
function rng(seed) {
  let s = seed >>> 0;
  const u = () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 4294967296;
  };
  return () => (u() + u() + u() + u() - 2) * Math.sqrt(3);
}

/** Statistics of `rows` features x = A z (A a fixed random mixing with decaying scales). */
async function syntheticStats(dim, rows, seed) {
  const next = rng(seed);
  const acc = new FeatureStatistics(dim);
  const k = 32; // each feature mixes its own noise with a few shared factors
  const mix = Float64Array.from({ length: dim * k }, () => next());
  const batch = 500;
  for (let start = 0; start < rows; start += batch) {
    const n = Math.min(batch, rows - start);
    const x = new Float64Array(n * dim);
    for (let i = 0; i < n; i++) {
      const factors = Array.from({ length: k }, () => next());
      for (let j = 0; j < dim; j++) {
        let v = next() * Math.exp(-j / 400);
        for (let f = 0; f < k; f++) v += 0.2 * mix[j * k + f] * factors[f];
        x[i * dim + j] = v + (seed === 2 ? 0.01 * Math.sin(j) : 0);
      }
    }
    await acc.add(x);
  }
  return acc.toStats();
}

/** Wall seconds, and CPU seconds of this process (all threads): their gap shows contention. */
async function seconds(fn) {
  const cpu0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  const result = await fn();
  const cpu = process.cpuUsage(cpu0);
  return { s: Number(process.hrtime.bigint() - t0) / 1e9, cpu: (cpu.user + cpu.system) / 1e6, result };
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

function sub(stats, dim) {
  const sigma = new Float64Array(dim * dim);
  for (let i = 0; i < dim; i++) sigma.set(stats.sigma.subarray(i * stats.dim, i * stats.dim + dim), i * dim);
  return { mu: stats.mu.slice(0, dim), sigma, dim };
}

console.log(`cores: ${availableParallelism()}, node ${process.version}`);
const full = 2048;
const a = await syntheticStats(full, 6000, 1);
const b = await syntheticStats(full, 6000, 2);

console.log('dim   route                 seconds  cpu-s  FID');
let headline;
for (const dim of [256, 512, 1024, 2048]) {
  const sa = sub(a, dim);
  const sb = sub(b, dim);
  const times = [];
  const cpus = [];
  let fid;
  for (let r = 0; r < ROUNDS; r++) {
    const { s, cpu, result } = await seconds(() => frechetDistance(sa, sb));
    times.push(s);
    cpus.push(cpu);
    fid = result.distance;
  }
  const t = median(times);
  console.log(`${String(dim).padEnd(5)} default (onnxruntime)  ${t.toFixed(3).padStart(7)}  ${median(cpus).toFixed(2).padStart(5)}  ${fid.toFixed(9)}`);
  if (dim <= 1024) {
    const { s, cpu, result } = await seconds(() => frechetDistance(sa, sb, { backend: 'js' }));
    const rel = Math.abs(result.distance - fid) / fid;
    console.log(
      `${String(dim).padEnd(5)} plain JS products      ${s.toFixed(3).padStart(7)}  ${cpu.toFixed(2).padStart(5)}  ${result.distance.toFixed(9)}  (x${(s / t).toFixed(1)} slower, rel diff ${rel.toExponential(1)})`,
    );
  }
  if (dim === full) headline = t;
}
console.log(`target: ${TARGET_SECONDS} s for 2048-d on 2 cores -> ${((headline / TARGET_SECONDS) * 100).toFixed(0)}% of the budget`);
console.log(`frechet-2048 seconds=${headline.toFixed(3)}`);
