/**
 * One ORT training step on a case file in the format of the official reference
 * `official_tiny/training_backward.json` (inputs, loss, every gradient, params after one AdamW step),
 * with the weights it started from: the loss, the gradients, clip_grad_norm_(1.0) and one AdamW step
 * (lr from the case, betas (0.9, 0.95), eps 1e-8, no weight decay, zero moments), and their errors.
 * Used by the parity test and by `scripts/train-step-parity.mjs`; nothing here knows a particular case.
 */
import { configFromJson, makeConfig, trainingEntries, toOfficialLayout, toTrainingLayout, type ModelConfig } from '@causalfusion/config';
import { clipGradArrays, HostAdamW } from '@causalfusion/config';
import { checkWeights, type Weights } from './weights';
import { OrtTrainingSession } from './trainer';

interface RefTensor {
  shape: number[];
  data: number[];
}

export interface TrainStepParity {
  loss: number;
  refLoss: number;
  /** |loss - ref| / |ref|. */
  lossErr: number;
  gradNorm: number;
  refGradNorm: number | null;
  /** Per parameter: max |ours - ref| / max |ref| of its gradient, and of its value after the AdamW step. */
  gradErrs: Map<string, number>;
  updateErrs: Map<string, number>;
  /** Entries whose reference gradient is within EPS_DOMINATED * eps of zero (update checked to move <= lr only). */
  epsDominated: number;
  /** Parameters whose reference gradient is roundoff (see ROUNDOFF_GRADIENT): update not compared. */
  roundoff: string[];
  /** The worst of each. */
  gradErr: number;
  updateErr: number;
}

function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]));
  return m;
}

/** max |ours - ref| / scale (scale: the reference tensor's max abs unless given). */
function maxRelErr(ours: ArrayLike<number>, ref: ArrayLike<number>, scale = maxAbs(ref), skip?: (i: number) => boolean): number {
  if (ours.length !== ref.length) throw new Error(`size mismatch: ${ours.length} values vs ${ref.length} in the case`);
  let diff = 0;
  for (let i = 0; i < ref.length; i++) {
    if (skip?.(i)) continue;
    const d = Math.abs(ours[i] - ref[i]);
    diff = Number.isNaN(d) ? Infinity : Math.max(diff, d);
  }
  return diff / Math.max(scale, 1e-30);
}

/**
 * A reference gradient below this fraction of the largest one is float32 roundoff of a gradient that is
 * zero in exact arithmetic (k_norm.bias: softmax is invariant to a shift shared by all keys, so the
 * official step records ~1e-8 noise there). Such a tensor is compared on the scale of the largest
 * gradient, and its AdamW update (roundoff divided by its own magnitude: +-lr noise) is not compared.
 */
export const ROUNDOFF_GRADIENT = 1e-6;

/**
 * AdamW's first step moves a value by lr * g / (|g| + eps): where |g| is within 100 eps (1e-6 here) the
 * step depends on g's last digits (a 1e-8 gradient difference moves it by ~lr / 10), so those entries
 * are checked only to move by at most lr, not to the update tolerance.
 */
export const EPS_DOMINATED = 100;

/** argsort of each row of `rand` [N, L] (the official shuffle: torch.argsort(torch.rand(N, L))). */
export function argsortRows(rand: ArrayLike<number>, N: number, L: number): Int32Array {
  const ids = new Int32Array(N * L);
  for (let n = 0; n < N; n++) {
    const order = Array.from({ length: L }, (_, i) => i).sort((a, b) => rand[n * L + a] - rand[n * L + b] || a - b);
    ids.set(order, n * L);
  }
  return ids;
}

/** The config of a case: its `model_config` if it has one, else the official_tiny model's. */
function caseConfig(c: any): ModelConfig {
  if (c.model_config) return configFromJson(c.model_config, 'the case model_config');
  return makeConfig('CausalFusion-Tiny', { classDropoutProb: 0.1 });
}

/** Run the case (parsed JSON) from `weights` (official keys and layout); `threads`: ORT intra-op threads. */
export async function trainStepParity(c: any, weights: Weights, threads = 1): Promise<TrainStepParity> {
  const need = (obj: any, key: string, where: string) => {
    if (obj?.[key] === undefined) throw new Error(`the case has no ${where}${key}; it is not in the training_backward.json format`);
    return obj[key];
  };
  const inputs = need(c, 'inputs', '');
  const config = caseConfig(c);
  checkWeights(config, weights, 'the weights');
  const x: RefTensor = need(inputs, 'x', 'inputs.');
  const N = x.shape[0];
  const entries = trainingEntries(config);
  const L = (config.inputSize / config.patchSize) ** 2;
  const rand = need(inputs, 'torch_rand_calls', 'inputs.');
  const shard = {
    x: Float32Array.from(x.data),
    y: Int32Array.from(need(inputs, 'y', 'inputs.').data),
    t: Int32Array.from(need(inputs, 't', 'inputs.').data),
    noise: Float32Array.from(need(inputs, 'noise', 'inputs.').data),
    idsShuffle: argsortRows(need(rand, 'shuffle_rand', 'inputs.torch_rand_calls.').data, N, L),
    labelDropRand: Float64Array.from(need(rand, 'label_drop_rand', 'inputs.torch_rand_calls.').data),
    splitSizes: need(inputs, 'split_sizes', 'inputs.') as number[],
    batchSize: N,
    maxArWeight: 2,
    minArWeight: 1,
    arWeights: inputs.ar_weights ? Float32Array.from(inputs.ar_weights.data) : undefined,
  };
  const params = entries.map((e) => toTrainingLayout(e, weights.get(e.key)!.data));
  const session = await OrtTrainingSession.create(config, { threads });
  let result;
  try {
    result = await session.lossAndGrads(params, shard);
  } finally {
    await session.release();
  }
  const trainable = session.trainable;
  const refGrads = need(c, 'grads', '');
  const gradErrs = new Map<string, number>();
  const official = trainable.map((e, i) => toOfficialLayout(e, result.grads[i]));
  const refOf = (e: { key: string }) => need(refGrads, e.key, 'grads.').data as number[];
  const largest = Math.max(...trainable.map((e) => maxAbs(refOf(e))));
  const roundoff = trainable.filter((e) => maxAbs(refOf(e)) < ROUNDOFF_GRADIENT * largest).map((e) => e.key);
  trainable.forEach((e, i) => gradErrs.set(e.key, maxRelErr(official[i], refOf(e), roundoff.includes(e.key) ? largest : maxAbs(refOf(e)))));

  // clip, then one AdamW step from zero moments, on the training-layout arrays
  const grads = result.grads.map((g) => Float32Array.from(g));
  const gradNorm = clipGradArrays(grads, 1);
  const trainableParams = entries.map((e, i) => (e.trainable ? params[i] : null)).filter((p): p is Float32Array => p !== null);
  const adam = new HostAdamW(
    trainableParams.map((p) => p.length),
    { lr: need(inputs, 'lr', 'inputs.'), beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0 },
  );
  adam.step(trainableParams, grads);
  const after = need(c, 'params_after_adamw', '');
  const updateErrs = new Map<string, number>();
  let epsDominated = 0;
  const lr = adam.lr;
  trainable.forEach((e, i) => {
    if (roundoff.includes(e.key)) return;
    const ours = toOfficialLayout(e, trainableParams[i]);
    const refAfter = need(after, e.key, 'params_after_adamw.').data as number[];
    const before = weights.get(e.key)!.data;
    const g = refOf(e);
    const dominated = (j: number) => Math.abs(g[j]) < EPS_DOMINATED * adam.eps;
    for (let j = 0; j < g.length; j++) {
      if (!dominated(j)) continue;
      epsDominated++;
      if (!(Math.abs(ours[j] - before[j]) <= lr * 1.0001)) throw new Error(`${e.key}[${j}] moved by ${Math.abs(ours[j] - before[j])}, more than lr ${lr}`);
    }
    updateErrs.set(e.key, maxRelErr(ours, refAfter, maxAbs(refAfter), dominated));
  });

  const refLoss = need(c, 'loss', '') as number;
  return {
    loss: result.loss,
    refLoss,
    lossErr: Math.abs(result.loss - refLoss) / Math.abs(refLoss),
    gradNorm,
    refGradNorm: c.grad_norm_before_clip ?? null,
    gradErrs,
    updateErrs,
    roundoff,
    epsDominated,
    gradErr: Math.max(...gradErrs.values()),
    updateErr: Math.max(...updateErrs.values()),
  };
}
