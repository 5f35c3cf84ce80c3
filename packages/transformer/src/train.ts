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

/** torch.optim.AdamW, one (m, v) pair per variable. */
export class AdamW {
  lr: number;
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  readonly weightDecay: number;
  /** Steps taken. */
  stepCount = 0;
  private readonly m = new Map<string, tf.Variable>();
  private readonly v = new Map<string, tf.Variable>();

  constructor(readonly variables: tf.Variable[], options: AdamWOptions = {}) {
    this.lr = options.lr ?? 8e-4;
    this.beta1 = options.beta1 ?? 0.9;
    this.beta2 = options.beta2 ?? 0.95;
    this.eps = options.eps ?? 1e-15;
    this.weightDecay = options.weightDecay ?? 0;
    // tidy frees the zerosLike tensors; variables survive it
    tf.tidy(() => {
      for (const variable of variables) {
        this.m.set(variable.name, tf.variable(tf.zerosLike(variable), false));
        this.v.set(variable.name, tf.variable(tf.zerosLike(variable), false));
      }
    });
  }

  /** Apply one update from gradients keyed by variable name. */
  step(grads: tf.NamedTensorMap): void {
    this.stepCount++;
    const bc1 = 1 - this.beta1 ** this.stepCount;
    const bc2 = 1 - this.beta2 ** this.stepCount;
    const stepSize = this.lr / bc1;
    const sqrtBc2 = Math.sqrt(bc2);
    tf.tidy(() => {
      for (const variable of this.variables) {
        const g = grads[variable.name];
        if (!g) continue;
        const m = this.m.get(variable.name)!;
        const v = this.v.get(variable.name)!;
        const mNew = tf.add(tf.mul(m, this.beta1), tf.mul(g, 1 - this.beta1));
        const vNew = tf.add(tf.mul(v, this.beta2), tf.mul(tf.square(g), 1 - this.beta2));
        m.assign(mNew);
        v.assign(vNew);
        let p: tf.Tensor = variable;
        if (this.weightDecay) p = tf.mul(p, 1 - this.lr * this.weightDecay);
        const denom = tf.add(tf.div(tf.sqrt(vNew), sqrtBc2), this.eps);
        variable.assign(tf.sub(p, tf.mul(tf.div(mNew, denom), stepSize)));
      }
    });
  }

  /** The moments and step count, one (m, v) pair per variable in `variables` order (for checkpoints). */
  getState(): { stepCount: number; m: Float32Array[]; v: Float32Array[] } {
    const read = (map: Map<string, tf.Variable>) => this.variables.map((x) => Float32Array.from(map.get(x.name)!.dataSync() as Float32Array));
    return { stepCount: this.stepCount, m: read(this.m), v: read(this.v) };
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
    tf.tidy(() =>
      this.variables.forEach((x, i) => {
        this.m.get(x.name)!.assign(tf.tensor(state.m[i], x.shape));
        this.v.get(x.name)!.assign(tf.tensor(state.v[i], x.shape));
      }),
    );
    this.stepCount = state.stepCount;
  }

  dispose(): void {
    for (const t of [...this.m.values(), ...this.v.values()]) t.dispose();
  }
}

/**
 * torch.nn.utils.clip_grad_norm_: scale all gradients by maxNorm / (norm + 1e-6) when the global norm
 * exceeds maxNorm. Returns the clipped gradients (new tensors; the inputs are disposed) and the norm.
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
