/**
 * The update of a training step on host Float32Arrays, the same for every model and runtime: global-norm
 * clipping as torch.nn.utils.clip_grad_norm_, AdamW as torch.optim.AdamW, and the EMA. No tfjs: the ONNX
 * trainer uses it as is, and the tfjs `AdamW` runs the same loop on its variables' values.
 */

/** Gradients in parameter order, one flat array per parameter (null: the parameter got no gradient). */
export type GradientArrays = (Float32Array | null)[];

export interface AdamWOptions {
  /** train.py defaults: lr 8e-4, betas (0.9, 0.95), eps 1e-15, weight decay 0. */
  lr?: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
  weightDecay?: number;
}

/** The moments and step count of an AdamW, one (m, v) pair per parameter (what checkpoints store). */
export interface AdamWState {
  stepCount: number;
  m: Float32Array[];
  v: Float32Array[];
}

/**
 * clip_grad_norm_(max_norm, eps 1e-6) on gradient arrays, scaling them in place; returns the norm before
 * clipping.
 */
export function clipGradArrays(grads: GradientArrays, maxNorm: number): number {
  let sumSq = 0;
  for (const g of grads) if (g) for (let j = 0; j < g.length; j++) sumSq += g[j] * g[j];
  const norm = Math.sqrt(sumSq);
  const coef = maxNorm / (norm + 1e-6);
  if (coef < 1) for (const g of grads) if (g) for (let j = 0; j < g.length; j++) g[j] *= coef;
  return norm;
}

/** One AdamW update of p, m, v in place (a plain loop over typed arrays, which V8 compiles well). */
export function adamwUpdate(
  p: Float32Array,
  m: Float32Array,
  v: Float32Array,
  g: ArrayLike<number>,
  beta1: number,
  beta2: number,
  eps: number,
  decay: number,
  stepSize: number,
  invSqrtBc2: number,
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

/** torch.optim.AdamW over parameters held as Float32Arrays (updated in place). */
export class HostAdamW {
  lr: number;
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  readonly weightDecay: number;
  stepCount = 0;
  private readonly m: Float32Array[];
  private readonly v: Float32Array[];

  /** `sizes`: values per parameter, in the order of the arrays `step` receives. */
  constructor(
    readonly sizes: readonly number[],
    options: AdamWOptions = {},
  ) {
    this.lr = options.lr ?? 8e-4;
    this.beta1 = options.beta1 ?? 0.9;
    this.beta2 = options.beta2 ?? 0.95;
    this.eps = options.eps ?? 1e-15;
    this.weightDecay = options.weightDecay ?? 0;
    this.m = sizes.map((n) => new Float32Array(n));
    this.v = sizes.map((n) => new Float32Array(n));
  }

  /** One update of `params` in place from `grads` (same order and sizes). */
  step(params: Float32Array[], grads: GradientArrays): void {
    if (grads.length !== this.sizes.length || params.length !== this.sizes.length) {
      throw new Error(`AdamW.step: ${grads.length} gradients and ${params.length} parameters for ${this.sizes.length} parameters`);
    }
    this.stepCount++;
    const { beta1, beta2, eps } = this;
    const stepSize = this.lr / (1 - beta1 ** this.stepCount);
    const invSqrtBc2 = 1 / Math.sqrt(1 - beta2 ** this.stepCount);
    const decay = 1 - this.lr * this.weightDecay;
    params.forEach((p, i) => {
      const g = grads[i];
      if (!g) return;
      if (g.length !== p.length || p.length !== this.sizes[i])
        throw new Error(`AdamW.step: gradient ${i} has ${g.length} values, parameter ${i} has ${p.length} (expected ${this.sizes[i]})`);
      adamwUpdate(p, this.m[i], this.v[i], g, beta1, beta2, eps, decay, stepSize, invSqrtBc2);
    });
  }

  getState(): AdamWState {
    return { stepCount: this.stepCount, m: this.m.map((a) => a.slice()), v: this.v.map((a) => a.slice()) };
  }

  /** Restore a state from {@link getState}; the moments must match the parameters in count and size. */
  setState(state: { stepCount: number; m: ArrayLike<number>[]; v: ArrayLike<number>[] }): void {
    const n = this.sizes.length;
    if (state.m.length !== n || state.v.length !== n) {
      throw new Error(`AdamW.setState: the state has ${state.m.length} moments for ${n} parameters; it comes from another model`);
    }
    this.sizes.forEach((size, i) => {
      if (state.m[i].length !== size || state.v[i].length !== size) {
        throw new Error(`AdamW.setState: moment ${i} has ${state.m[i].length} values, parameter ${i} has ${size}; it comes from another model`);
      }
    });
    this.sizes.forEach((_, i) => {
      this.m[i].set(state.m[i]);
      this.v[i].set(state.v[i]);
    });
    this.stepCount = state.stepCount;
  }
}

/** ema = decay * ema + (1 - decay) * model, per array pair (in place). */
export function updateEmaArrays(ema: Float32Array[], model: ArrayLike<number>[], decay: number): void {
  const c = 1 - decay;
  ema.forEach((e, i) => {
    const m = model[i];
    for (let j = 0; j < e.length; j++) e[j] = decay * e[j] + c * m[j];
  });
}
