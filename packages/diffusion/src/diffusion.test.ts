import * as fs from 'fs';
import * as path from 'path';
import { createDiffusion, getNamedBetaSchedule, spaceTimesteps } from './index';

const REF = path.resolve(__dirname, '../../../../shared/reference/ddpm_schedule.json');
const ref = JSON.parse(fs.readFileSync(REF, 'utf8'));

function expectClose(actual: ArrayLike<number>, expected: number[], rel: number, label: string): void {
  expect(actual.length).toBe(expected.length);
  let worst = 0;
  let at = -1;
  for (let i = 0; i < expected.length; i++) {
    const e = expected[i];
    const err = Math.abs(actual[i] - e) / Math.max(Math.abs(e), 1e-300);
    const errAbs = Math.abs(actual[i] - e);
    const bad = e === 0 ? errAbs : err;
    if (bad > worst) {
      worst = bad;
      at = i;
    }
  }
  if (worst > rel) throw new Error(`${label}: relative error ${worst} at index ${at} (got ${actual[at]}, want ${expected[at]})`);
}

const camel: Record<string, string> = {
  betas: 'betas',
  alphas_cumprod: 'alphasCumprod',
  alphas_cumprod_prev: 'alphasCumprodPrev',
  sqrt_recip_alphas_cumprod: 'sqrtRecipAlphasCumprod',
  sqrt_recipm1_alphas_cumprod: 'sqrtRecipm1AlphasCumprod',
  posterior_variance: 'posteriorVariance',
  posterior_log_variance_clipped: 'posteriorLogVarianceClipped',
  posterior_mean_coef1: 'posteriorMeanCoef1',
  posterior_mean_coef2: 'posteriorMeanCoef2',
  fixed_large_variance: 'modelVariance',
  fixed_large_log_variance: 'modelLogVariance',
};

describe('base linear schedule', () => {
  it('matches the official 1000-step betas and alphas_cumprod', () => {
    const d = createDiffusion({ steps: 1000 });
    expectClose(d.betas, ref.base.betas, 1e-12, 'betas');
    expectClose(d.alphasCumprod, ref.base.alphas_cumprod, 1e-12, 'alphas_cumprod');
    expect(Array.from(d.timestepMap)).toEqual(Array.from({ length: 1000 }, (_, i) => i));
  });
  it('scales the linear schedule to the number of steps', () => {
    const b = getNamedBetaSchedule('linear', 500);
    expect(b[0]).toBeCloseTo(0.0002, 15);
    expect(b[499]).toBeCloseTo(0.04, 15);
  });
  it('cosine schedule follows alpha_bar = cos^2 and caps betas at 0.999', () => {
    const b = getNamedBetaSchedule('cosine', 1000);
    let ac = 1;
    for (let i = 0; i < 500; i++) ac *= 1 - b[i];
    const want = Math.cos(((0.5 + 0.008) / 1.008) * (Math.PI / 2)) ** 2 / Math.cos((0.008 / 1.008) * (Math.PI / 2)) ** 2;
    expect(ac).toBeCloseTo(want, 10);
    expect(Math.max(...b)).toBeLessThanOrEqual(0.999);
    expect(b[999]).toBe(0.999);
  });
});

describe.each(['250', '50', 'ddim25'])('respacing "%s"', (respacing) => {
  const want = ref.respacings[respacing];
  const d = createDiffusion({ steps: 1000, respacing, variance: 'fixed_large' });
  it('has the official timestep map (the ORIGINAL timesteps fed to the model)', () => {
    expect(d.numTimesteps).toBe(want.num_timesteps);
    expect(Array.from(d.timestepMap)).toEqual(want.timestep_map);
  });
  it.each(Object.keys(camel))('matches %s to 1e-12 relative', (key) => {
    expectClose((d as any)[camel[key]], want[key], 1e-12, `${respacing}.${key}`);
  });
});

describe('spaceTimesteps', () => {
  it('keeps 0, 40, ..., 960 for ddim25', () => {
    expect(spaceTimesteps(1000, 'ddim25')).toEqual(Array.from({ length: 25 }, (_, i) => i * 40));
  });
  it('handles comma-separated sections', () => {
    const s = spaceTimesteps(300, '10,15,20');
    expect(s.length).toBe(45);
    expect(s[0]).toBe(0);
    expect(s[10]).toBe(100);
    expect(s[s.length - 1]).toBe(299);
  });
  it('rounds half to even like Python', () => {
    // 10 steps -> 5: stride 2.25 gives 0, 2.25, 4.5, 6.75, 9 -> round: 0, 2, 4 (4.5 -> 4), 7, 9
    expect(spaceTimesteps(10, '5')).toEqual([0, 2, 4, 7, 9]);
  });
  it('rejects impossible respacings with a message saying what is allowed', () => {
    expect(() => spaceTimesteps(1000, '2000')).toThrow(/cannot take 2000 steps from a section of 1000/);
    expect(() => spaceTimesteps(1000, 'ddim333')).toThrow(/no integer stride gives exactly 333/);
    expect(() => spaceTimesteps(1000, 'fast')).toThrow(/allowed: .*ddimN/);
    expect(() => createDiffusion({ schedule: 'sigmoid' })).toThrow(/unknown beta schedule "sigmoid"; allowed: linear, cosine/);
    expect(() => createDiffusion({ variance: 'learned' as any })).toThrow(/allowed: fixed_large, fixed_small/);
  });
});

describe('p_sample check (official formulas, float64)', () => {
  const chk = ref.p_sample_check;
  const d = createDiffusion({ respacing: chk.respacing });
  const flat = (a: any): number[] => (Array.isArray(a) ? a.flatMap(flat) : [a]);
  const xT = flat(chk.x_t);
  const eps = flat(chk.eps);
  const noise = flat(chk.noise);
  it.each<[number, any]>(chk.cases.map((c: any, i: number) => [i, c]))('case %i', (_i, c: any) => {
    expect(c.t.map((t: number) => d.modelTimestep(t))).toEqual(c.model_timestep_after_map);
    const mv = d.pMeanVariance(eps, c.t, xT);
    expectClose(mv.predXStart, flat(c.pred_xstart), 1e-10, 'pred_xstart');
    expectClose(mv.mean, flat(c.model_mean), 1e-10, 'model_mean');
    expectClose(mv.variance, c.model_variance_per_batch, 1e-10, 'variance');
    expectClose(mv.logVariance, c.model_log_variance_per_batch, 1e-10, 'log variance');
    const { prevSample, predXStart } = d.step(eps, c.t, xT, undefined, { noise });
    expectClose(prevSample, flat(c.sample_with_noise), 1e-10, 'sample');
    expectClose(predXStart, flat(c.pred_xstart), 1e-10, 'step pred_xstart');
  });
});

describe('steps', () => {
  const d = createDiffusion({ respacing: '50' });
  it('DDPM at t=0 returns the posterior mean (noise multiplied by 0)', () => {
    const x = [0.3, -0.2, 1.5];
    const eps = [0.1, 0.2, -0.3];
    const a = d.step(eps, 0, x, { normal: () => 5 });
    const mv = d.pMeanVariance(eps, 0, x);
    expect(Array.from(a.prevSample)).toEqual(Array.from(mv.mean));
  });
  it('DDIM with eta=0 is deterministic and inverts exactly on the true noise', () => {
    // x_t built from a known x0 and eps: DDIM with the true eps lands exactly on the q(x_{t-1}) point.
    const x0 = [0.5, -0.25, 0.75, 0.1];
    const e = [0.3, -1.2, 0.7, 2.0];
    const t = 30;
    const xt = d.qSample(x0, t, e);
    const { prevSample, predXStart } = d.step(e, t, xt, undefined, { method: 'ddim', eta: 0 });
    predXStart.forEach((v, i) => expect(v).toBeCloseTo(x0[i], 12));
    const want = d.qSample(x0, t - 1, e);
    prevSample.forEach((v, i) => expect(v).toBeCloseTo(want[i], 12));
  });
  it('clipDenoised clamps the x0 estimate to [-1, 1] before DDPM and DDIM use it', () => {
    // x0 = (1.8, -0.4, -3): built exactly, so the unclipped estimate is x0 and the clipped one (1, -0.4, -1).
    const x0 = [1.8, -0.4, -3];
    const e = [0.5, -1, 0.25];
    const t = 25;
    const xt = d.qSample(x0, t, e);
    const zero = { normal: () => 0 };
    for (const method of ['ddpm', 'ddim'] as const) {
      const plain = d.step(e, t, xt, zero, { method });
      const clipped = d.step(e, t, xt, zero, { method, clipDenoised: true });
      plain.predXStart.forEach((v, i) => expect(v).toBeCloseTo(x0[i], 10));
      expect(Array.from(clipped.predXStart).map((v) => Number(v.toFixed(10)))).toEqual([1, -0.4, -1]);
      // the unclamped coordinate moves exactly as without clipping; the clamped ones toward the clamped x0
      expect(clipped.prevSample[1]).toBeCloseTo(plain.prevSample[1], 12);
      expect(clipped.prevSample[0]).toBeLessThan(plain.prevSample[0]);
      expect(clipped.prevSample[2]).toBeGreaterThan(plain.prevSample[2]);
    }
    // DDPM: the mean is the posterior mean around the clamped x0
    const want = d.qPosteriorMeanVariance([1, -0.4, -1], xt, t).mean;
    d.step(e, t, xt, zero, { clipDenoised: true }).prevSample.forEach((v, i) => expect(v).toBeCloseTo(want[i], 12));
  });
  it('DDIM with eta=1 has the DDPM posterior variance', () => {
    const t = 20;
    const ab = d.alphasCumprod[t];
    const abp = d.alphasCumprodPrev[t];
    const sigma2 = ((1 - abp) / (1 - ab)) * (1 - ab / abp);
    expect(sigma2).toBeCloseTo(d.posteriorVariance[t], 14);
    const x = [0];
    const eps = [0];
    const a = d.step(eps, t, x, undefined, { method: 'ddim', eta: 1, noise: [1] });
    const b = d.step(eps, t, x, undefined, { method: 'ddim', eta: 1, noise: [0] });
    expect(a.prevSample[0] - b.prevSample[0]).toBeCloseTo(Math.sqrt(sigma2), 12);
  });
  it('a full DDPM loop from noise on a one-point data set converges to that point', () => {
    // With the exact eps for a dataset {c}, sampling must return c.
    const c = 0.7;
    let x: Float64Array = Float64Array.of(2.5);
    let seed = 1;
    const rng = { normal: () => ((seed = (seed * 16807) % 2147483647) / 2147483647 - 0.5) * 2 };
    for (const t of d.samplingTimesteps()) {
      const eps = [(x[0] - d.sqrtAlphasCumprod[t] * c) / d.sqrtOneMinusAlphasCumprod[t]];
      x = d.step(eps, t, x, rng).prevSample;
    }
    expect(x[0]).toBeCloseTo(c, 10);
  });
  it('rejects bad timesteps and mismatched lengths', () => {
    expect(() => d.step([0], 50, [0])).toThrow(/timestep 50 is out of range; respaced timesteps run from 0 to 49/);
    expect(() => d.step([0, 1], 3, [0])).toThrow(/eps has 2 values but x has 1/);
    expect(() => d.step([0], 3, [0])).toThrow(/rng\) or explicit noise is required/);
    expect(() => d.step([0], 3, [0], undefined, { method: 'euler' as any, noise: [0] })).toThrow(/allowed: ddpm, ddim/);
  });
  it('fixed_small uses the posterior variance', () => {
    const s = createDiffusion({ respacing: '50', variance: 'fixed_small' });
    const mv = s.pMeanVariance([0], 10, [0]);
    expect(mv.variance[0]).toBe(s.posteriorVariance[10]);
    expect(mv.logVariance[0]).toBe(s.posteriorLogVarianceClipped[10]);
  });
});
