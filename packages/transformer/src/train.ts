/**
 * The minimum to train: the official `training_losses` (q_sample, then the model's training forward),
 * AdamW as torch.optim.AdamW, global-norm gradient clipping, and one `trainStep` as in train.py
 * (random timesteps, AR split sizes and AR loss weights). The full training app lives elsewhere.
 */
import { tf } from '@causalfusion/backend';
import type { GaussianDiffusion } from '@causalfusion/diffusion';
import { createDiffusion } from '@causalfusion/diffusion';
import type { Rng } from '@causalfusion/rng';
import { ArWeightSchedule, getArWeights, splitIntegerExpDecay } from '@causalfusion/sampler';
import type { CausalDiffusionModel, TrainingForwardResult, TrainingRandomness } from './model';

export interface TrainingLossInputs {
  /** Clean latents NCHW [N, C, H, W]. */
  x: ArrayLike<number>;
  t: ArrayLike<number>;
  y: ArrayLike<number>;
  /** The noise of x_t; drawn from `randomness.rng` when left out. */
  noise?: ArrayLike<number>;
  splitSizes: ArrayLike<number>;
}

/**
 * The official `diffusion.training_losses(model, x, t, y, attn_mask, last_split_size, noise)`:
 * x_t = q_sample(x, t, noise) (float64 coefficients, rounded to float32), then the training forward.
 */
export function trainingLosses(
  model: CausalDiffusionModel,
  diffusion: GaussianDiffusion,
  inputs: TrainingLossInputs,
  randomness: TrainingRandomness = {},
): TrainingForwardResult & { xt: Float32Array; noise: Float32Array } {
  let noise: Float32Array;
  if (inputs.noise) noise = Float32Array.from(inputs.noise);
  else {
    if (!randomness.rng) throw new Error('trainingLosses: give inputs.noise or randomness.rng');
    noise = new Float32Array(inputs.x.length);
    randomness.rng.fillNormal(noise);
  }
  const xt = Float32Array.from(diffusion.qSample(inputs.x, inputs.t, noise));
  const result = model.trainingForward({ x: inputs.x, xn: xt, noise, t: inputs.t, y: inputs.y, splitSizes: inputs.splitSizes }, randomness);
  return { ...result, xt, noise };
}

export interface AdamWOptions {
  /** train.py defaults: lr 8e-4, betas (0.9, 0.95), eps 1e-15, weight decay 0. */
  lr?: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
  weightDecay?: number;
}

/** Gradients in `variables` order, one flat array per variable (null: the variable got no gradient). */
export type GradientArrays = (Float32Array | null)[];

/**
 * torch.optim.AdamW, one (m, v) pair per variable. The moments live in host Float32Arrays and the
 * update runs as one JS loop per variable: on wasm that is several times faster than ~10 small tensor
 * ops per variable, and the data-parallel trainer hands in summed gradients without making tensors.
 */
export class AdamW {
  lr: number;
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  readonly weightDecay: number;
  /** Steps taken. */
  stepCount = 0;
  private readonly m: Float32Array[];
  private readonly v: Float32Array[];

  constructor(readonly variables: tf.Variable[], options: AdamWOptions = {}) {
    this.lr = options.lr ?? 8e-4;
    this.beta1 = options.beta1 ?? 0.9;
    this.beta2 = options.beta2 ?? 0.95;
    this.eps = options.eps ?? 1e-15;
    this.weightDecay = options.weightDecay ?? 0;
    this.m = variables.map((x) => new Float32Array(x.size));
    this.v = variables.map((x) => new Float32Array(x.size));
  }

  /** Apply one update from gradients keyed by variable name, or given as arrays in `variables` order. */
  step(grads: tf.NamedTensorMap | GradientArrays): void {
    const arrays: GradientArrays = Array.isArray(grads)
      ? grads
      : this.variables.map((x) => (grads[x.name] ? (grads[x.name].dataSync() as Float32Array) : null));
    if (arrays.length !== this.variables.length) {
      throw new Error(`AdamW.step: ${arrays.length} gradients for ${this.variables.length} variables`);
    }
    this.stepCount++;
    const { beta1, beta2, eps } = this;
    const stepSize = this.lr / (1 - beta1 ** this.stepCount);
    const sqrtBc2 = Math.sqrt(1 - beta2 ** this.stepCount);
    const decay = 1 - this.lr * this.weightDecay;
    this.variables.forEach((variable, i) => {
      const g = arrays[i];
      if (!g) return;
      if (g.length !== variable.size) throw new Error(`AdamW.step: gradient ${i} has ${g.length} values, variable ${variable.name} has ${variable.size}`);
      const p = Float32Array.from(variable.dataSync() as Float32Array);
      adamwUpdate(p, this.m[i], this.v[i], g, beta1, beta2, eps, decay, stepSize, 1 / sqrtBc2);
      tf.tidy(() => variable.assign(tf.tensor(p, variable.shape)));
    });
  }

  /** The moments and step count, one (m, v) pair per variable in `variables` order (for checkpoints). */
  getState(): { stepCount: number; m: Float32Array[]; v: Float32Array[] } {
    return { stepCount: this.stepCount, m: this.m.map((a) => a.slice()), v: this.v.map((a) => a.slice()) };
  }

  /** Restore a state from {@link getState}; the moments must match the variables in count and size. */
  setState(state: { stepCount: number; m: ArrayLike<number>[]; v: ArrayLike<number>[] }): void {
    const n = this.variables.length;
    if (state.m.length !== n || state.v.length !== n) {
      throw new Error(`AdamW.setState: the state has ${state.m.length} moments for ${n} variables; it comes from another model`);
    }
    this.variables.forEach((x, i) => {
      if (state.m[i].length !== x.size || state.v[i].length !== x.size) {
        throw new Error(`AdamW.setState: moment ${i} has ${state.m[i].length} values, variable ${i} has ${x.size}; it comes from another model`);
      }
    });
    this.variables.forEach((_, i) => {
      this.m[i].set(state.m[i]);
      this.v[i].set(state.v[i]);
    });
    this.stepCount = state.stepCount;
  }

  /** Nothing to free (the moments are host arrays); kept so callers can treat it as a resource. */
  dispose(): void {}
}

/** One AdamW update of p, m, v in place (a plain loop over typed arrays, which V8 compiles well). */
function adamwUpdate(
  p: Float32Array, m: Float32Array, v: Float32Array, g: Float32Array,
  beta1: number, beta2: number, eps: number, decay: number, stepSize: number, invSqrtBc2: number,
): void {
  const c1 = 1 - beta1;
  const c2 = 1 - beta2;
  for (let j = 0; j < p.length; j++) {
    const gj = g[j];
    const mj = beta1 * m[j] + c1 * gj;
    const vj = beta2 * v[j] + c2 * gj * gj;
    m[j] = mj;
    v[j] = vj;
    p[j] = p[j] * decay - (stepSize * mj) / (Math.sqrt(vj) * invSqrtBc2 + eps);
  }
}

/**
 * Global-norm clipping as torch.nn.utils.clip_grad_norm_(max_norm, eps 1e-6). Returns new gradients
 * (the inputs are disposed when scaled) and the norm before clipping.
 */
export function clipGradNorm(grads: tf.NamedTensorMap, maxNorm: number): { grads: tf.NamedTensorMap; norm: number } {
  const names = Object.keys(grads);
  const norm = Math.sqrt(tf.tidy(() => tf.addN(names.map((k) => tf.sum(tf.square(grads[k])))).dataSync()[0]));
  const coef = maxNorm / (norm + 1e-6);
  if (coef >= 1) return { grads, norm };
  const out: tf.NamedTensorMap = {};
  for (const k of names) {
    out[k] = tf.mul(grads[k], coef);
    grads[k].dispose();
  }
  return { grads: out, norm };
}

/** {@link clipGradNorm} on gradient arrays, scaling them in place; returns the norm before clipping. */
export function clipGradArrays(grads: GradientArrays, maxNorm: number): number {
  let sumSq = 0;
  for (const g of grads) if (g) for (let j = 0; j < g.length; j++) sumSq += g[j] * g[j];
  const norm = Math.sqrt(sumSq);
  const coef = maxNorm / (norm + 1e-6);
  if (coef < 1) for (const g of grads) if (g) for (let j = 0; j < g.length; j++) g[j] *= coef;
  return norm;
}

export interface TrainStepOptions {
  /** Default: linear betas, 1000 steps (the official training diffusion). */
  diffusion?: GaussianDiffusion;
  /** Fixed AR split sizes; default: drawn with splitIntegerExpDecay(L, arStepDecay). */
  splitSizes?: number[];
  arStepDecay?: number;
  maxArWeight?: number;
  minArWeight?: number;
  arWeightSchedule?: ArWeightSchedule;
  /** Global gradient-norm clip (train.py: 1.0). */
  clipNorm?: number;
}

export interface TrainStepResult {
  loss: number;
  gradNorm: number;
  splitSizes: number[];
}

/**
 * One optimisation step of train.py: t ~ U{0..T-1}, noise ~ N(0, 1), AR split sizes, the training
 * forward (label dropout, per-sample shuffle), loss = mean(loss * AR weights), backward, clip, AdamW.
 * `x` holds NCHW latents [N, C, H, W]; every random draw comes from `rng`.
 */
export function trainStep(
  model: CausalDiffusionModel,
  optimizer: AdamW,
  batch: { x: ArrayLike<number>; y: ArrayLike<number> },
  rng: Rng,
  options: TrainStepOptions = {},
): TrainStepResult {
  const diffusion = options.diffusion ?? defaultDiffusion();
  const N = batch.y.length;
  const L = model.numTokens;
  const t = Array.from({ length: N }, () => rng.uniformInt(diffusion.numTimesteps));
  const splitSizes = options.splitSizes ?? splitIntegerExpDecay(L, options.arStepDecay ?? 0.9, rng);
  const weights = getArWeights(splitSizes, options.maxArWeight ?? 2, options.minArWeight ?? 1, options.arWeightSchedule ?? 'linear');
  const noise = new Float32Array(batch.x.length);
  rng.fillNormal(noise);
  const xt = Float32Array.from(diffusion.qSample(batch.x, t, noise));

  const { value, grads } = tf.variableGrads(() => {
    const { loss } = model.trainingForward({ x: batch.x, xn: xt, noise, t, y: batch.y, splitSizes }, { rng });
    return tf.mean(tf.mul(loss, tf.tensor3d(weights, [1, L, 1]))) as tf.Scalar;
  }, optimizer.variables);
  const clipped = clipGradNorm(grads, options.clipNorm ?? 1);
  optimizer.step(clipped.grads);
  tf.dispose(clipped.grads);
  const loss = value.dataSync()[0];
  value.dispose();
  return { loss, gradNorm: clipped.norm, splitSizes };
}

let cachedDiffusion: GaussianDiffusion | null = null;
function defaultDiffusion(): GaussianDiffusion {
  cachedDiffusion ??= createDiffusion({ respacing: '' });
  return cachedDiffusion;
}
