/**
 * The Gaussian diffusion process of the official CausalFusion code (ADM's `GaussianDiffusion` wrapped by
 * `SpacedDiffusion`), on plain typed arrays. No framework: a backbone gives eps as numbers, this gives
 * back the next x.
 *
 * Arrays are laid out batch-major: `x[b * perSample + j]`. Timesteps `t` are RESPACED indices
 * (0..numTimesteps-1); the model must be fed `timestepMap[t]`, the original 0..999 timestep.
 */
import { getNamedBetaSchedule, spaceTimesteps } from './schedule';

/** Variance of p(x_{t-1} | x_t): `fixed_large` (betas, the official sampler's default) or `fixed_small` (posterior). */
export type VarianceType = 'fixed_large' | 'fixed_small';
export const VARIANCE_TYPES: readonly VarianceType[] = ['fixed_large', 'fixed_small'];

export interface DiffusionOptions {
  /** Number of steps of the underlying (training) process. Default 1000. */
  steps?: number;
  /** Beta schedule name: `linear` (default) or `cosine`. */
  schedule?: string;
  /** Respacing: `""` (all steps, default), `"250"`, `"10,15,20"` or `"ddim25"`. See {@link spaceTimesteps}. */
  respacing?: string;
  /** `fixed_large` (default, as sample.py) or `fixed_small`. */
  variance?: VarianceType;
}

/** Anything that draws standard normals, e.g. `@causalfusion/rng`'s `Rng`. */
export interface NormalSource {
  normal(): number;
}

export type Timesteps = number | ArrayLike<number>;

export interface StepOptions {
  /** `ddpm` (ancestral sampling, default) or `ddim`. */
  method?: 'ddpm' | 'ddim';
  /** DDIM's eta: 0 is deterministic DDIM, 1 matches DDPM's variance. Default 0. */
  eta?: number;
  /** Use this noise instead of drawing from `rng` (same length as x). */
  noise?: ArrayLike<number>;
  /**
   * Clamp the x_0 estimate to [-1, 1] before it is used (`clip_denoised` of ADM / guided-diffusion). Right
   * for data scaled to [-1, 1] (pixels); leave it off for latents, which are not bounded. Default off, as
   * the official CausalFusion sampler (latent space).
   */
  clipDenoised?: boolean;
}

export interface StepResult {
  /** x_{t-1}. */
  prevSample: Float64Array;
  /** The model's estimate of x_0 at this step. */
  predXStart: Float64Array;
}

export interface MeanVariance {
  mean: Float64Array;
  predXStart: Float64Array;
  /** Per batch element. */
  variance: Float64Array;
  /** Per batch element. */
  logVariance: Float64Array;
}

/** One timestep per batch element, from a scalar or an array. */
function perBatch(t: Timesteps, size: number, numTimesteps: number): { ts: Int32Array; perSample: number } {
  const ts = typeof t === 'number' ? Int32Array.of(t) : Int32Array.from(t);
  if (ts.length === 0) throw new RangeError('timesteps: expected at least one');
  if (size % ts.length !== 0) {
    throw new RangeError(`x has ${size} values, which is not a multiple of the ${ts.length} timesteps given (one per batch element)`);
  }
  for (let i = 0; i < ts.length; i++) {
    const v = typeof t === 'number' ? t : (t as ArrayLike<number>)[i];
    if (!Number.isInteger(v) || v < 0 || v >= numTimesteps) {
      throw new RangeError(`timestep ${v} is out of range; respaced timesteps run from 0 to ${numTimesteps - 1}`);
    }
  }
  return { ts, perSample: size / ts.length };
}

function checkSameLength(name: string, a: ArrayLike<number>, x: ArrayLike<number>): void {
  if (a.length !== x.length) throw new RangeError(`${name} has ${a.length} values but x has ${x.length}; they must match`);
}

/**
 * A (possibly respaced) Gaussian diffusion process. Create it with {@link createDiffusion}.
 * Field names are the official ones in camelCase.
 */
export class GaussianDiffusion {
  readonly numTimesteps: number;
  /** Respaced index -> original timestep fed to the model. */
  readonly timestepMap: Int32Array;
  readonly varianceType: VarianceType;
  readonly betas: Float64Array;
  readonly alphasCumprod: Float64Array;
  readonly alphasCumprodPrev: Float64Array;
  readonly alphasCumprodNext: Float64Array;
  readonly sqrtAlphasCumprod: Float64Array;
  readonly sqrtOneMinusAlphasCumprod: Float64Array;
  readonly logOneMinusAlphasCumprod: Float64Array;
  readonly sqrtRecipAlphasCumprod: Float64Array;
  readonly sqrtRecipm1AlphasCumprod: Float64Array;
  readonly posteriorVariance: Float64Array;
  readonly posteriorLogVarianceClipped: Float64Array;
  readonly posteriorMeanCoef1: Float64Array;
  readonly posteriorMeanCoef2: Float64Array;
  /** The variance used by `pMeanVariance` for this process's `varianceType`. */
  readonly modelVariance: Float64Array;
  readonly modelLogVariance: Float64Array;

  constructor(betas: Float64Array, timestepMap: Int32Array, varianceType: VarianceType) {
    const n = betas.length;
    for (let i = 0; i < n; i++) {
      if (!(betas[i] > 0 && betas[i] <= 1)) throw new RangeError(`betas[${i}] = ${betas[i]}; betas must lie in (0, 1]`);
    }
    this.numTimesteps = n;
    this.timestepMap = timestepMap;
    this.varianceType = varianceType;
    this.betas = betas;
    const f = () => new Float64Array(n);
    const ac = f(),
      acPrev = f(),
      acNext = f();
    let prod = 1;
    for (let i = 0; i < n; i++) {
      prod *= 1 - betas[i]; // np.cumprod multiplies left to right, as here
      ac[i] = prod;
    }
    for (let i = 0; i < n; i++) {
      acPrev[i] = i === 0 ? 1 : ac[i - 1];
      acNext[i] = i === n - 1 ? 0 : ac[i + 1];
    }
    this.alphasCumprod = ac;
    this.alphasCumprodPrev = acPrev;
    this.alphasCumprodNext = acNext;
    this.sqrtAlphasCumprod = ac.map(Math.sqrt);
    this.sqrtOneMinusAlphasCumprod = ac.map((a) => Math.sqrt(1 - a));
    this.logOneMinusAlphasCumprod = ac.map((a) => Math.log(1 - a));
    this.sqrtRecipAlphasCumprod = ac.map((a) => Math.sqrt(1 / a));
    this.sqrtRecipm1AlphasCumprod = ac.map((a) => Math.sqrt(1 / a - 1));

    const pv = f(),
      coef1 = f(),
      coef2 = f();
    for (let i = 0; i < n; i++) {
      const alpha = 1 - betas[i];
      pv[i] = (betas[i] * (1 - acPrev[i])) / (1 - ac[i]);
      coef1[i] = (betas[i] * Math.sqrt(acPrev[i])) / (1 - ac[i]);
      coef2[i] = ((1 - acPrev[i]) * Math.sqrt(alpha)) / (1 - ac[i]);
    }
    this.posteriorVariance = pv;
    this.posteriorMeanCoef1 = coef1;
    this.posteriorMeanCoef2 = coef2;
    // posterior_variance[0] is 0; the official code clips the log by repeating element 1.
    this.posteriorLogVarianceClipped = n > 1 ? pv.map((v, i) => Math.log(i === 0 ? pv[1] : v)) : new Float64Array(0);

    if (varianceType === 'fixed_large') {
      // append(posterior_variance[1], betas[1:]) of THIS (respaced) process: element 0 is not betas[0].
      this.modelVariance = betas.map((b, i) => (i === 0 ? (n > 1 ? pv[1] : b) : b));
      this.modelLogVariance = this.modelVariance.map(Math.log);
    } else {
      // FIXED_SMALL: the true posterior variance, with the clipped log (no log(0) at t = 0).
      this.modelVariance = this.posteriorVariance;
      this.modelLogVariance = this.posteriorLogVarianceClipped;
    }
  }

  /** The original timestep(s) the model must be fed for respaced index/indices `t`. */
  modelTimestep(t: number): number {
    if (!Number.isInteger(t) || t < 0 || t >= this.numTimesteps) {
      throw new RangeError(`timestep ${t} is out of range; respaced timesteps run from 0 to ${this.numTimesteps - 1}`);
    }
    return this.timestepMap[t];
  }

  /** Respaced indices from the noisiest to the cleanest, the order a sampler visits them. */
  samplingTimesteps(): number[] {
    return Array.from({ length: this.numTimesteps }, (_, i) => this.numTimesteps - 1 - i);
  }

  /** Diffuse x_0 to x_t: sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) noise. */
  qSample(xStart: ArrayLike<number>, t: Timesteps, noise: ArrayLike<number>): Float64Array {
    checkSameLength('noise', noise, xStart);
    const { ts, perSample } = perBatch(t, xStart.length, this.numTimesteps);
    const out = new Float64Array(xStart.length);
    for (let i = 0; i < out.length; i++) {
      const ti = ts[Math.floor(i / perSample)];
      out[i] = this.sqrtAlphasCumprod[ti] * xStart[i] + this.sqrtOneMinusAlphasCumprod[ti] * noise[i];
    }
    return out;
  }

  /** Mean and variance of q(x_{t-1} | x_t, x_0). */
  qPosteriorMeanVariance(
    xStart: ArrayLike<number>,
    xT: ArrayLike<number>,
    t: Timesteps,
  ): { mean: Float64Array; variance: Float64Array; logVarianceClipped: Float64Array } {
    checkSameLength('xStart', xStart, xT);
    const { ts, perSample } = perBatch(t, xT.length, this.numTimesteps);
    const mean = new Float64Array(xT.length);
    for (let i = 0; i < mean.length; i++) {
      const ti = ts[Math.floor(i / perSample)];
      mean[i] = this.posteriorMeanCoef1[ti] * xStart[i] + this.posteriorMeanCoef2[ti] * xT[i];
    }
    return {
      mean,
      variance: Float64Array.from(ts, (ti) => this.posteriorVariance[ti]),
      logVarianceClipped: Float64Array.from(ts, (ti) => this.posteriorLogVarianceClipped[ti]),
    };
  }

  /** x_0 from x_t and the predicted noise: sqrt(1/alpha_bar) x_t - sqrt(1/alpha_bar - 1) eps. No clipping (as the official code). */
  predictXStartFromEps(xT: ArrayLike<number>, t: Timesteps, eps: ArrayLike<number>): Float64Array {
    checkSameLength('eps', eps, xT);
    const { ts, perSample } = perBatch(t, xT.length, this.numTimesteps);
    const out = new Float64Array(xT.length);
    for (let i = 0; i < out.length; i++) {
      const ti = ts[Math.floor(i / perSample)];
      out[i] = this.sqrtRecipAlphasCumprod[ti] * xT[i] - this.sqrtRecipm1AlphasCumprod[ti] * eps[i];
    }
    return out;
  }

  /** The noise implied by x_t and an x_0 estimate (inverse of {@link predictXStartFromEps}). */
  predictEpsFromXStart(xT: ArrayLike<number>, t: Timesteps, predXStart: ArrayLike<number>): Float64Array {
    checkSameLength('predXStart', predXStart, xT);
    const { ts, perSample } = perBatch(t, xT.length, this.numTimesteps);
    const out = new Float64Array(xT.length);
    for (let i = 0; i < out.length; i++) {
      const ti = ts[Math.floor(i / perSample)];
      out[i] = (this.sqrtRecipAlphasCumprod[ti] * xT[i] - predXStart[i]) / this.sqrtRecipm1AlphasCumprod[ti];
    }
    return out;
  }

  /** p(x_{t-1} | x_t) from an eps prediction: mean, predicted x_0, and this process's fixed variance. */
  pMeanVariance(eps: ArrayLike<number>, t: Timesteps, xT: ArrayLike<number>, clipDenoised = false): MeanVariance {
    const predXStart = this.predictXStartFromEps(xT, t, eps);
    if (clipDenoised) clampUnit(predXStart);
    const { mean } = this.qPosteriorMeanVariance(predXStart, xT, t);
    const { ts } = perBatch(t, xT.length, this.numTimesteps);
    return {
      mean,
      predXStart,
      variance: Float64Array.from(ts, (ti) => this.modelVariance[ti]),
      logVariance: Float64Array.from(ts, (ti) => this.modelLogVariance[ti]),
    };
  }

  /** Noise for a step: the given array, or fresh draws from the source. */
  private stepNoise(n: number, rng: NormalSource | undefined, noise: ArrayLike<number> | undefined): ArrayLike<number> {
    if (noise) {
      if (noise.length !== n) throw new RangeError(`noise has ${noise.length} values but x has ${n}; they must match`);
      return noise;
    }
    if (!rng) throw new TypeError('step: a random source (rng) or explicit noise is required');
    const out = new Float64Array(n);
    for (let i = 0; i < n; i++) out[i] = rng.normal();
    return out;
  }

  /**
   * One reverse step from x_t to x_{t-1}, given the model's eps prediction (diffusers-style).
   *
   * DDPM: mean + (t != 0) * exp(0.5 * logVariance) * noise, as the official `p_sample`. Noise is drawn
   * at every step, including t = 0 where it is multiplied by 0, so a seeded run draws the same
   * numbers as the official loop.
   * DDIM: the deterministic (eta = 0) or stochastic update of Song et al. from the same x_0 estimate.
   */
  step(eps: ArrayLike<number>, t: Timesteps, x: ArrayLike<number>, rng?: NormalSource, options: StepOptions = {}): StepResult {
    const method = options.method ?? 'ddpm';
    const { ts, perSample } = perBatch(t, x.length, this.numTimesteps);
    if (method === 'ddpm') {
      const { mean, predXStart, logVariance } = this.pMeanVariance(eps, t, x, options.clipDenoised);
      const noise = this.stepNoise(x.length, rng, options.noise);
      const prevSample = new Float64Array(x.length);
      for (let b = 0, i = 0; b < ts.length; b++) {
        const scale = (ts[b] !== 0 ? 1 : 0) * Math.exp(0.5 * logVariance[b]); // once per batch element, not per value
        for (const end = i + perSample; i < end; i++) prevSample[i] = mean[i] + scale * noise[i];
      }
      return { prevSample, predXStart };
    }
    if (method === 'ddim') {
      const eta = options.eta ?? 0;
      if (!(eta >= 0)) throw new RangeError(`ddim eta must be >= 0, got ${eta}`);
      const predXStart = this.predictXStartFromEps(x, t, eps);
      if (options.clipDenoised) clampUnit(predXStart);
      // The official DDIM recomputes eps from x_0 (this is what makes clipping reach the update).
      const epsHat = this.predictEpsFromXStart(x, t, predXStart);
      const noise = eta > 0 ? this.stepNoise(x.length, rng, options.noise) : null;
      const prevSample = new Float64Array(x.length);
      for (let i = 0; i < x.length; i++) {
        const ti = ts[Math.floor(i / perSample)];
        const ab = this.alphasCumprod[ti];
        const abPrev = this.alphasCumprodPrev[ti];
        const sigma = eta * Math.sqrt((1 - abPrev) / (1 - ab)) * Math.sqrt(1 - ab / abPrev);
        const meanPred = predXStart[i] * Math.sqrt(abPrev) + Math.sqrt(1 - abPrev - sigma * sigma) * epsHat[i];
        prevSample[i] = meanPred + (noise && ti !== 0 ? sigma * noise[i] : 0);
      }
      return { prevSample, predXStart };
    }
    throw new RangeError(`unknown step method "${method}"; allowed: ddpm, ddim`);
  }
}

/** Clamp to [-1, 1] in place. */
function clampUnit(x: Float64Array): void {
  for (let i = 0; i < x.length; i++) x[i] = x[i] < -1 ? -1 : x[i] > 1 ? 1 : x[i];
}

/**
 * Build a diffusion process the way the official `create_diffusion(timestep_respacing)` does:
 * a base schedule of `steps` betas, then keep the respaced subset with betas recomputed from the
 * base alphas_cumprod (`1 - abar[map[i]] / abar[map[i-1]]`).
 */
export function createDiffusion(options: DiffusionOptions = {}): GaussianDiffusion {
  const steps = options.steps ?? 1000;
  const schedule = options.schedule ?? 'linear';
  const respacing = options.respacing ?? '';
  const variance = options.variance ?? 'fixed_large';
  if (!VARIANCE_TYPES.includes(variance)) {
    throw new RangeError(`unknown variance "${variance}"; allowed: ${VARIANCE_TYPES.join(', ')}`);
  }
  const baseBetas = getNamedBetaSchedule(schedule, steps);
  const base = new GaussianDiffusion(
    baseBetas,
    Int32Array.from(baseBetas, (_, i) => i),
    variance,
  );
  const keep = new Set(spaceTimesteps(steps, respacing));
  const betas: number[] = [];
  const map: number[] = [];
  let last = 1;
  base.alphasCumprod.forEach((ac, i) => {
    if (keep.has(i)) {
      betas.push(1 - ac / last);
      last = ac;
      map.push(i);
    }
  });
  return new GaussianDiffusion(Float64Array.from(betas), Int32Array.from(map), variance);
}
