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
import type { TrainingRandomness } from '@causalfusion/config';
import type { CausalDiffusionModel, TrainingForwardResult } from './model';
import { HostAdamW, type AdamWOptions, type AdamWState, type GradientArrays } from '@causalfusion/config';

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

/**
 * torch.optim.AdamW on tf.Variables: {@link HostAdamW} (moments in host Float32Arrays, one JS loop per
 * variable: on wasm several times faster than ~10 small tensor ops per variable) applied to the
 * variables' values, which are read and assigned back.
 */
export class AdamW {
  readonly host: HostAdamW;

  constructor(
    readonly variables: tf.Variable[],
    options: AdamWOptions = {},
  ) {
    this.host = new HostAdamW(
      variables.map((x) => x.size),
      options,
    );
  }

  get lr(): number {
    return this.host.lr;
  }
  set lr(value: number) {
    this.host.lr = value;
  }
  get stepCount(): number {
    return this.host.stepCount;
  }

  /** Apply one update from gradients keyed by variable name, or given as arrays in `variables` order. */
  step(grads: tf.NamedTensorMap | GradientArrays): void {
    const arrays: GradientArrays = Array.isArray(grads)
      ? grads
      : this.variables.map((x) => (grads[x.name] ? (grads[x.name].dataSync() as Float32Array) : null));
    if (arrays.length !== this.variables.length) {
      throw new Error(`AdamW.step: ${arrays.length} gradients for ${this.variables.length} variables`);
    }
    const params = this.variables.map((variable) => Float32Array.from(variable.dataSync() as Float32Array));
    this.host.step(params, arrays);
    this.variables.forEach((variable, i) => {
      if (arrays[i]) tf.tidy(() => variable.assign(tf.tensor(params[i], variable.shape)));
    });
  }

  getState(): AdamWState {
    return this.host.getState();
  }

  setState(state: { stepCount: number; m: ArrayLike<number>[]; v: ArrayLike<number>[] }): void {
    this.host.setState(state);
  }

  /** Nothing to free (the moments are host arrays); kept so callers can treat it as a resource. */
  dispose(): void {}
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
