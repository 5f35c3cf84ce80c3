/**
 * The sampler against an analytic backbone: data of class c is Gaussian, x ~ N(mu_c, Sigma) over the
 * L*D token values, so the optimal eps prediction given clean context tokens and noised tokens has a
 * closed form. A correct dual-factorization sampler must then reproduce the Gaussian, for any S_eval.
 */
import { createDiffusion } from '@causalfusion/diffusion';
import { createRng } from '@causalfusion/rng';
import { Denoiser, DenoiserSession, edit, editRegion, sample } from './index';

// ---------------------------------------------------------------- small dense linear algebra
type Mat = Float64Array[]; // rows

function sub(S: Mat, rows: number[], cols: number[]): Mat {
  return rows.map((r) => Float64Array.from(cols, (c) => S[r][c]));
}
/** Solve A X = B for symmetric positive-definite A (Cholesky); B is n x m. */
function spdSolve(A: Mat, B: Mat): Mat {
  const n = A.length;
  const Lc: Mat = Array.from({ length: n }, () => new Float64Array(n));
  for (let i = 0; i < n; i++)
    for (let j = 0; j <= i; j++) {
      let s = A[i][j];
      for (let k = 0; k < j; k++) s -= Lc[i][k] * Lc[j][k];
      Lc[i][j] = i === j ? Math.sqrt(s) : s / Lc[j][j];
    }
  const m = B[0]?.length ?? 0;
  const X: Mat = B.map((row) => Float64Array.from(row));
  for (let c = 0; c < m; c++) {
    for (let i = 0; i < n; i++) {
      let s = X[i][c];
      for (let k = 0; k < i; k++) s -= Lc[i][k] * X[k][c];
      X[i][c] = s / Lc[i][i];
    }
    for (let i = n - 1; i >= 0; i--) {
      let s = X[i][c];
      for (let k = i + 1; k < n; k++) s -= Lc[k][i] * X[k][c];
      X[i][c] = s / Lc[i][i];
    }
  }
  return X;
}
function transpose(A: Mat): Mat {
  const m = A[0]?.length ?? 0;
  return Array.from({ length: m }, (_, j) => Float64Array.from(A, (row) => row[j]));
}
function matmul(A: Mat, B: Mat): Mat {
  const m = B[0]?.length ?? 0;
  return A.map((row) => {
    const out = new Float64Array(m);
    for (let k = 0; k < row.length; k++) for (let j = 0; j < m; j++) out[j] += row[k] * B[k][j];
    return out;
  });
}

// ---------------------------------------------------------------- the analytic backbone
function sameRow(positions: Int32Array, count: number, r: number): boolean {
  for (let j = 0; j < count; j++) if (positions[r * count + j] !== positions[(r - 1) * count + j]) return false;
  return true;
}
const H = 4,
  W = 4,
  D = 1,
  L = H * W,
  DIM = L * D;
const base = createDiffusion({ steps: 1000 }); // the model sees ORIGINAL timesteps
const SIGMA: Mat = Array.from({ length: DIM }, (_, i) =>
  Float64Array.from({ length: DIM }, (_, j) => {
    const [ri, ci, rj, cj] = [Math.floor(i / W), i % W, Math.floor(j / W), j % W];
    return 0.3 * Math.exp(-Math.hypot(ri - rj, ci - cj) / 1.5) + (i === j ? 0.02 : 0);
  }),
);
const MEANS: Record<string, Float64Array> = {
  '0': Float64Array.from({ length: DIM }, (_, i) => (Math.floor(i / W) < 2 ? 1 : -1)), // top bright
  '1': Float64Array.from({ length: DIM }, (_, i) => (i % W < 2 ? -0.5 : 0.8)), // right bright
  null: new Float64Array(DIM).fill(0.1),
};

class GaussianDenoiser implements Denoiser<number> {
  readonly numTokens = L;
  readonly tokenDim = D;
  calls: { kind: 'push' | 'predict'; rows: number; count: number; timestep?: number }[] = [];
  private cache = new Map<string, { R: Mat; A: Mat; a: number; s: number }>();

  start(conditions: ReadonlyArray<number | null>): DenoiserSession {
    const means = conditions.map((c) => MEANS[String(c)]);
    // Per row: the context positions and values pushed so far.
    const ctx = conditions.map(() => ({ dims: [] as number[], values: [] as number[] }));
    return {
      pushClean: (tokens, positions, count) => {
        this.calls.push({ kind: 'push', rows: conditions.length, count });
        for (let r = 0; r < conditions.length; r++)
          for (let j = 0; j < count; j++)
            for (let d = 0; d < D; d++) {
              ctx[r].dims.push(positions[r * count + j] * D + d);
              ctx[r].values.push(tokens[(r * count + j) * D + d]);
            }
      },
      predictEps: (noised, positions, count, timestep) => {
        this.calls.push({ kind: 'predict', rows: conditions.length, count, timestep });
        const out = new Float32Array(noised.length);
        let prevKey = '';
        let mats: { R: Mat; A: Mat; a: number; s: number } | undefined;
        for (let r = 0; r < conditions.length; r++) {
          const dims: number[] = [];
          for (let j = 0; j < count; j++) for (let d = 0; d < D; d++) dims.push(positions[r * count + j] * D + d);
          // rows usually share positions and context positions: look the matrices up once per distinct set
          const key = r > 0 && sameRow(positions, count, r) && ctx[r].dims.length === ctx[r - 1].dims.length ? prevKey : `${dims}|${ctx[r].dims}`;
          if (key !== prevKey || !mats) mats = this.matrices(dims, ctx[r].dims, timestep);
          prevKey = key;
          const { R, A, a, s } = mats;
          const mu = means[r];
          // m = mu_S + R (x_C - mu_C); E[x0 | xt] = m + A (xt - a m); eps = (xt - a E) / s
          const n = dims.length;
          const m = Float64Array.from(dims, (dd) => mu[dd]);
          ctx[r].dims.forEach((cd, k) => {
            const diff = ctx[r].values[k] - mu[cd];
            for (let i = 0; i < n; i++) m[i] += R[i][k] * diff;
          });
          for (let i = 0; i < n; i++) {
            let e = m[i];
            for (let j = 0; j < n; j++) e += A[i][j] * (noised[r * n + j] - a * m[j]);
            out[r * n + i] = (noised[r * n + i] - a * e) / s;
          }
        }
        return out;
      },
    };
  }

  /** Regression on the context and the posterior gain; they depend on positions and t only. */
  private matrices(dims: number[], ctxDims: number[], t: number) {
    const key = `${dims}|${ctxDims}|${t}`;
    let hit = this.cache.get(key);
    if (!hit) {
      let K = sub(SIGMA, dims, dims);
      let R: Mat = dims.map(() => new Float64Array(0));
      if (ctxDims.length) {
        const Scc = sub(SIGMA, ctxDims, ctxDims);
        const Scs = sub(SIGMA, ctxDims, dims);
        R = transpose(spdSolve(Scc, Scs)); // Sigma_SC Sigma_CC^-1
        const RS = matmul(R, Scs);
        K = K.map((row, i) => row.map((v, j) => v - RS[i][j]));
      }
      const ab = base.alphasCumprod[t];
      const a = Math.sqrt(ab),
        s = Math.sqrt(1 - ab);
      // A = a K (a^2 K + s^2 I)^-1 = (solve((a^2 K + s^2 I), a K))^T since both are symmetric
      const M = K.map((row, i) => row.map((v, j) => a * a * v + (i === j ? s * s : 0)));
      const A = transpose(
        spdSolve(
          M,
          K.map((row) => row.map((v) => a * v)),
        ),
      );
      hit = { R, A, a, s };
      this.cache.set(key, hit);
    }
    return hit;
  }
}

// ---------------------------------------------------------------- statistics helpers
function moments(tokens: Float32Array, n: number, dims: number[]) {
  const k = dims.length;
  const mean = new Float64Array(k);
  const cov = Array.from({ length: k }, () => new Float64Array(k));
  for (let b = 0; b < n; b++) for (let i = 0; i < k; i++) mean[i] += tokens[b * DIM + dims[i]] / n;
  for (let b = 0; b < n; b++)
    for (let i = 0; i < k; i++)
      for (let j = 0; j < k; j++) cov[i][j] += ((tokens[b * DIM + dims[i]] - mean[i]) * (tokens[b * DIM + dims[j]] - mean[j])) / (n - 1);
  return { mean, cov };
}
function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}
const ALL = Array.from({ length: DIM }, (_, i) => i);

jest.setTimeout(60_000);

describe('sampling reproduces the data distribution for any S_eval', () => {
  const N = 1500;
  const diffusion = createDiffusion({ respacing: '50' });
  it.each([1, 2, 4, L])('S_eval = %i: mean and covariance of class 0', async (arSteps) => {
    const den = new GaussianDenoiser();
    // one random order for the whole batch keeps the analytic backbone's matrices cacheable
    const order = createRng(arSteps).permutation(L);
    const { tokens } = await sample(den, { conditions: new Array(N).fill(0), arSteps, diffusion, order, seed: 7 + arSteps });
    const { mean, cov } = moments(tokens, N, ALL);
    // Sampling error of a mean: sqrt(0.32 / 1500) = 0.015; of a covariance entry about 0.012.
    expect(maxAbsDiff(mean, MEANS['0'])).toBeLessThan(0.07);
    for (let i = 0; i < DIM; i++) expect(maxAbsDiff(cov[i], SIGMA[i])).toBeLessThan(0.06);
  });

  it('DDIM (eta = 0) also lands on the distribution', async () => {
    const den = new GaussianDenoiser();
    const { tokens } = await sample(den, {
      conditions: new Array(N).fill(1),
      arSteps: 4,
      diffusion: createDiffusion({ respacing: 'ddim50' }),
      method: 'ddim',
      seed: 3,
    });
    const { mean, cov } = moments(tokens, N, ALL);
    expect(maxAbsDiff(mean, MEANS['1'])).toBeLessThan(0.07);
    for (let i = 0; i < DIM; i++) expect(maxAbsDiff(cov[i], SIGMA[i])).toBeLessThan(0.06);
  });
});

describe('classifier-free guidance', () => {
  it('moves samples to mu_null + s (mu_c - mu_null), the exact effect of guidance on Gaussians', async () => {
    const N = 800;
    const s = 3;
    const den = new GaussianDenoiser();
    const { tokens } = await sample(den, {
      conditions: new Array(N).fill(0),
      arSteps: 2,
      cfgScale: s,
      diffusion: createDiffusion({ respacing: '100' }),
      seed: 11,
    });
    const { mean } = moments(tokens, N, ALL);
    const want = MEANS['0'].map((m, i) => MEANS.null[i] + s * (m - MEANS.null[i]));
    expect(maxAbsDiff(mean, want)).toBeLessThan(0.1);
    // batched as official: one predict call carries the conditional rows then the unconditional ones
    expect(den.calls.find((c) => c.kind === 'predict')!.rows).toBe(2 * N);
  });

  it('the interval is half-open on the ORIGINAL timestep; outside it the conditional eps is used', async () => {
    const diffusion = createDiffusion({ respacing: '10' });
    const run = (cfgInterval?: [number, number], cfgScale = 4) =>
      sample(new GaussianDenoiser(), { conditions: [0, 1], arSteps: 2, diffusion, cfgScale, cfgInterval, seed: 5 });
    const never = await run([0, 0]);
    const off = await run(undefined, 1);
    expect(Array.from(never.tokens)).toEqual(Array.from(off.tokens)); // guidance never applied == no guidance
    const always = await run([0, 1000]);
    const half = await run([0, 500]);
    expect(maxAbsDiff(half.tokens, always.tokens)).toBeGreaterThan(1e-3);
    expect(maxAbsDiff(half.tokens, off.tokens)).toBeGreaterThan(1e-3);
  });
});

describe('zero-shot editing', () => {
  it('keeps kept tokens bit-identical and draws the region from the conditional Gaussian under the NEW class', async () => {
    const N = 1500;
    const region = editRegion('center', H, W);
    const keptDims = ALL.filter((i) => !region[i]);
    const genDims = ALL.filter((i) => region[i]);
    // one source image of class 0 (its mean plus a fixed perturbation), edited to class 1
    const rng = createRng(99);
    const image = Float32Array.from(MEANS['0'], (m) => m + 0.3 * rng.normal());
    const tokens = new Float32Array(N * DIM);
    for (let b = 0; b < N; b++) tokens.set(image, b * DIM);
    const den = new GaussianDenoiser();
    const out = await edit(den, {
      tokens,
      region: 'center',
      conditions: new Array(N).fill(1),
      arSteps: 2,
      diffusion: createDiffusion({ respacing: '100' }),
      seed: 1,
    });
    for (let b = 0; b < N; b++) for (const i of keptDims) if (out.tokens[b * DIM + i] !== image[i]) throw new Error(`kept token ${i} of sample ${b} changed`);
    // conditional of N(mu_1, Sigma) given the kept values
    const Scc = sub(SIGMA, keptDims, keptDims);
    const Scs = sub(SIGMA, keptDims, genDims);
    const R = transpose(spdSolve(Scc, Scs));
    const condMean = genDims.map((g, i) => MEANS['1'][g] + keptDims.reduce((acc, k, j) => acc + R[i][j] * (image[k] - MEANS['1'][k]), 0));
    const RS = matmul(R, Scs);
    const { mean, cov } = moments(out.tokens, N, genDims);
    expect(maxAbsDiff(mean, condMean)).toBeLessThan(0.05);
    genDims.forEach((g, i) =>
      expect(
        maxAbsDiff(
          cov[i],
          genDims.map((h, j) => SIGMA[g][h] - RS[i][j]),
        ),
      ).toBeLessThan(0.04),
    );
    // the kept tokens were pushed once, before any prediction, under the new class
    expect(den.calls[0]).toEqual({ kind: 'push', rows: N, count: keptDims.length });
  });

  it('accepts any boolean mask and rejects bad ones', async () => {
    const den = new GaussianDenoiser();
    const tokens = new Float32Array(2 * DIM).fill(0.5);
    const region = new Uint8Array(L);
    region[3] = region[12] = 1;
    const out = await edit(den, { tokens, region, conditions: [0, 1], arSteps: 2, diffusion: createDiffusion({ respacing: '10' }) });
    expect(out.splitSizes).toEqual([1, 1]);
    expect(out.tokens.filter((v, i) => v !== 0.5 && ![3, 12].includes(i % DIM)).length).toBe(0);
    await expect(edit(den, { tokens, region: new Uint8Array(L), conditions: [0, 1] })).rejects.toThrow(/region to regenerate is empty/);
    await expect(edit(den, { tokens, region: new Uint8Array(9), conditions: [0, 1] })).rejects.toThrow(/region has 9 entries but the image has 16 tokens/);
    await expect(edit(den, { tokens: new Float32Array(5), region: 'top', conditions: [0, 1] })).rejects.toThrow(/tokens have 5 values, expected 32/);
    await expect(edit(den, { tokens, region: 'top', conditions: [0, 1], arSteps: 9 })).rejects.toThrow(/9 AR steps is more than the 8 tokens/);
  });
});

describe('cost: S_eval = 8 evaluates as many noised tokens as S_eval = 1', () => {
  it('same noised-token evaluations; one cache push per finished token outside the last step', async () => {
    const diffusion = createDiffusion({ respacing: '20' });
    const run = (arSteps: number) => sample(new GaussianDenoiser(), { conditions: [0, 1], arSteps, diffusion, cfgScale: 2 });
    const one = await run(1);
    const eight = await run(8);
    const rows = 4; // 2 samples x (cond, uncond)
    expect(one.stats.noisedTokenEvals).toBe(rows * L * 20);
    expect(eight.stats.noisedTokenEvals).toBe(one.stats.noisedTokenEvals);
    expect(one.stats.cleanTokensPushed).toBe(0);
    expect(eight.stats.cleanTokensPushed).toBe(rows * (L - 2)); // every finished token pushed once, last step not needed
    expect(eight.stats.predictCalls).toBe(8 * 20);
    expect(eight.stats.pushCalls).toBe(7);
    expect(eight.stats.backboneCalls).toBe(8 * 20 + 7);
  });
});

describe('options', () => {
  const diffusion = createDiffusion({ respacing: '5' });
  it('rowSeeds: a sample is the same alone, in a shard or in the whole batch (random order, CFG)', async () => {
    const opts = { arSteps: 2, diffusion, order: 'random' as const, cfgScale: 2 };
    const seeds = ['s:0', 's:1', 's:2', 's:3'];
    const whole = await sample(new GaussianDenoiser(), { ...opts, conditions: [0, 1, 0, 1], rowSeeds: seeds });
    const first = await sample(new GaussianDenoiser(), { ...opts, conditions: [0, 1], rowSeeds: seeds.slice(0, 2) });
    const last = await sample(new GaussianDenoiser(), { ...opts, conditions: [1], rowSeeds: seeds.slice(3) });
    const per = whole.tokens.length / 4;
    expect(Array.from(first.tokens)).toEqual(Array.from(whole.tokens.subarray(0, 2 * per)));
    expect(Array.from(last.tokens)).toEqual(Array.from(whole.tokens.subarray(3 * per)));
    // and differs from one shared stream
    const shared = await sample(new GaussianDenoiser(), { ...opts, conditions: [0, 1, 0, 1], seed: 's:0' });
    expect(Array.from(shared.tokens)).not.toEqual(Array.from(whole.tokens));
    await expect(sample(new GaussianDenoiser(), { ...opts, conditions: [0, 1], rowSeeds: seeds })).rejects.toThrow(/rowSeeds: got 4 seeds for a batch of 2/);
  });

  it('is reproducible from the seed, reports progress and returns intermediates', async () => {
    const progress: string[] = [];
    const a = await sample(new GaussianDenoiser(), {
      conditions: [0],
      arSteps: 2,
      diffusion,
      seed: 42,
      intermediates: true,
      onProgress: (p) => progress.push(`${p.arStep}/${p.arSteps}:${p.step}/${p.steps}@${p.timestep}`),
    });
    const b = await sample(new GaussianDenoiser(), { conditions: [0], arSteps: 2, diffusion, seed: 42 });
    expect(Array.from(a.tokens)).toEqual(Array.from(b.tokens));
    expect(progress.slice(0, 5)).toEqual(['1/2:1/5@999', '1/2:2/5@749', '1/2:3/5@500', '1/2:4/5@250', '1/2:5/5@0']);
    expect(progress).toHaveLength(10);
    expect(a.intermediates).toHaveLength(10);
    // raster order: during AR step 1 the bottom half is not generated yet (0); at its end x0 == the result
    const first = a.intermediates![0].x0;
    expect(Array.from(first.subarray(8))).toEqual(new Array(8).fill(0));
    expect(Array.from(a.intermediates![9].x0)).toEqual(Array.from(a.tokens));
  });
  it('onIntermediate hears each frame as it is recorded; an aborted signal stops the loop and frees the session', async () => {
    const heard: number[] = [];
    const r = await sample(new GaussianDenoiser(), {
      conditions: [0],
      arSteps: 4,
      diffusion,
      intermediates: { every: 5 },
      onIntermediate: (f) => heard.push(f.arStep),
    });
    expect(heard).toEqual([1, 2, 3, 4]);
    expect(r.intermediates!.map((f) => f.arStep)).toEqual(heard);

    // a promise from onProgress is awaited: timers run between the diffusion steps
    const order: string[] = [];
    await sample(new GaussianDenoiser(), {
      conditions: [0],
      diffusion,
      onProgress: (p) => new Promise<void>((resolve) => setTimeout(() => (order.push(`timer ${p.step}`), resolve()), 0)),
      onIntermediate: (f) => order.push(`frame ${f.step}`),
      intermediates: true,
    });
    expect(order.slice(0, 4)).toEqual(['frame 1', 'timer 1', 'frame 2', 'timer 2']);

    const controller = new AbortController();
    const den = new GaussianDenoiser();
    let disposed = 0;
    const start = den.start.bind(den);
    den.start = (conds) => ({ ...start(conds), dispose: () => void disposed++ });
    let steps = 0;
    const run = sample(den, {
      conditions: [0],
      arSteps: 2,
      diffusion,
      onProgress: () => {
        if (++steps === 3) controller.abort(new Error('client went away'));
      },
      signal: controller.signal,
    });
    await expect(run).rejects.toThrow('client went away');
    expect(steps).toBe(3);
    expect(disposed).toBe(1);
  });
  it('clipDenoised keeps every x0 estimate, and so the result, in [-1, 1]', async () => {
    // class 0's mean is +-1, so unclamped draws spill past 1 in magnitude; clamped ones cannot
    const opts = { conditions: [0, 0, 0, 0, 1, 1, 1, 1], arSteps: 2, diffusion, seed: 3, intermediates: true } as const;
    const plain = await sample(new GaussianDenoiser(), opts);
    const clipped = await sample(new GaussianDenoiser(), { ...opts, clipDenoised: true });
    const maxAbs = (x: Float32Array) => x.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
    expect(maxAbs(plain.tokens)).toBeGreaterThan(1);
    expect(maxAbs(clipped.tokens)).toBeLessThanOrEqual(1);
    for (const f of clipped.intermediates!) expect(maxAbs(f.x0)).toBeLessThanOrEqual(1);
  });
  it('explicit split sizes and per-sample orders (random order: one permutation per sample)', async () => {
    const perSample = await sample(new GaussianDenoiser(), { conditions: [0, 0, 0], order: 'random', arSteps: 4, diffusion, intermediates: true });
    // after AR step 1 of raster-free random orders, the generated 4 tokens differ between samples
    const nonzero = (b: number) => Array.from(perSample.intermediates![4].x0.subarray(b * L, b * L + L), (v) => (v !== 0 ? 1 : 0)).join('');
    expect(new Set([nonzero(0), nonzero(1), nonzero(2)]).size).toBeGreaterThan(1);
    const rng = createRng(0);
    const orders = [rng.permutation(L), rng.permutation(L)];
    const r = await sample(new GaussianDenoiser(), { conditions: [0, 1], splitSizes: [3, 13], order: orders, diffusion });
    expect(r.splitSizes).toEqual([3, 13]);
    expect(r.tokens.length).toBe(2 * L * D);
  });
  it('bad input is a clear error', async () => {
    const den = new GaussianDenoiser();
    await expect(sample(den, { conditions: [0], arSteps: 17, diffusion })).rejects.toThrow(/17 AR steps is more than the 16 tokens/);
    await expect(sample(den, { conditions: [0], cfgScale: 0.5, diffusion })).rejects.toThrow(/guidance scale 0.5 is below 1/);
    await expect(sample(den, { conditions: [0], splitSizes: [4, 4], diffusion })).rejects.toThrow(/add up to 8 but the sample has 16/);
    await expect(sample(den, { conditions: [0], order: Int32Array.of(0, 1, 2), diffusion })).rejects.toThrow(/order has 3 entries but there are 16 tokens/);
    await expect(sample(den, { conditions: [0], order: 'block', grid: [3, 5], diffusion })).rejects.toThrow(/grid 3 x 5 does not hold the 16 tokens/);
    await expect(sample(den, { conditions: [], diffusion })).rejects.toThrow(/at least one sample/);
  });
});
