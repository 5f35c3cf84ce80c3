/**
 * One training step's randomness and batch layout, without any tensor library (the ORT runtime and the
 * tfjs runtime's replicas share them):
 *
 *   1. `drawStepRandomness` (main thread): every random draw of the step, in the order `trainStep` of
 *      @causalfusion/transformer draws them (timesteps, AR split sizes, noise, per-sample token
 *      permutations, label-dropout uniforms).
 *   2. `batchShard` / `sliceShard`: the batch, or samples [from, to) of it, with their share of the draws.
 *      A shard's loss is averaged over the whole batch, so the shards' gradients add up to the batch's.
 *
 * The tfjs runtime (./tfjs-runtime) sums the shards; the trainer then clips the global norm and applies
 * AdamW and the EMA on host arrays, as for the ORT runtime.
 */
import type { Rng } from '@causalfusion/rng';
import { equalSplits, splitIntegerExpDecay } from '@causalfusion/sampler';
import type { TrainingShard } from '@causalfusion/config';

export interface StepRandomness {
  /** [N] timesteps 0..T-1. */
  t: Int32Array;
  /** AR split sizes, shared by the batch. */
  splitSizes: number[];
  /** [N, C, H, W] the noise of x_t. */
  noise: Float32Array;
  /** [N * L] per-sample token permutations. */
  idsShuffle: Int32Array;
  /** [N] label-dropout uniforms. */
  labelDropRand: Float64Array;
}

export interface RecipeOptions {
  arStepDecay: number;
  maxArWeight: number;
  minArWeight: number;
  order: 'random' | 'raster';
  /** Label dropout; with 0 the model has no null class and no uniforms are drawn (as trainStep). */
  classDropout: number;
  /** Fixed AR steps (S equal splits, nothing drawn); 0 or absent: drawn by splitIntegerExpDecay (the official recipe). */
  arSteps?: number;
}

/** All random draws of one step for a batch of N samples of `valuesPerSample` values and L tokens. */
export function drawStepRandomness(rng: Rng, N: number, valuesPerSample: number, L: number, numTimesteps: number, recipe: RecipeOptions): StepRandomness {
  const t = Int32Array.from({ length: N }, () => rng.uniformInt(numTimesteps));
  const splitSizes = recipe.arSteps ? equalSplits(L, recipe.arSteps) : splitIntegerExpDecay(L, recipe.arStepDecay, rng);
  const noise = new Float32Array(N * valuesPerSample);
  rng.fillNormal(noise);
  const idsShuffle = new Int32Array(N * L);
  for (let n = 0; n < N; n++) {
    if (recipe.order === 'random') idsShuffle.set(rng.permutation(L), n * L);
    else for (let j = 0; j < L; j++) idsShuffle[n * L + j] = j;
  }
  const labelDropRand = recipe.classDropout > 0 ? rng.uniformArray(N) : new Float64Array(N);
  return { t, splitSizes, noise, idsShuffle, labelDropRand };
}

/** What one replica computes: a batch or a contiguous shard of one, with its randomness. */
export type ShardInput = TrainingShard;

export interface ShardResult {
  /** The shard's share of the batch-mean loss (shares add up to the loss). */
  loss: number;
  /** One gradient per trainable variable, in `model.trainableVariables()` order; null if unconnected. */
  grads: (Float32Array | null)[];
}

/** The whole batch with its randomness, as a runtime takes it. */
export function batchShard(batch: { x: Float32Array; y: Int32Array }, rnd: StepRandomness, recipe: RecipeOptions): TrainingShard {
  return { x: batch.x, y: batch.y, ...rnd, batchSize: batch.y.length, maxArWeight: recipe.maxArWeight, minArWeight: recipe.minArWeight };
}

/** Samples [from, to) of a shard (the loss stays averaged over the whole batch). */
export function sliceShard(shard: TrainingShard, from: number, to: number): TrainingShard {
  const N = shard.y.length;
  const per = shard.x.length / N;
  const L = shard.idsShuffle.length / N;
  return {
    ...shard,
    x: shard.x.slice(from * per, to * per),
    y: shard.y.slice(from, to),
    t: shard.t.slice(from, to),
    noise: shard.noise.slice(from * per, to * per),
    idsShuffle: shard.idsShuffle.slice(from * L, to * L),
    labelDropRand: shard.labelDropRand.slice(from, to),
  };
}

/**
 * Split N samples into `parts` contiguous shards: [from, to) pairs. Shard 0 (the main thread's) gets
 * `mainExtra` samples more than an even share, the others split the rest as evenly as possible: a
 * worker spends some samples' time per step on receiving weights and sending gradients (about two with
 * the mnist preset), so an even split would leave the main thread waiting for it.
 */
export function shardRanges(N: number, parts: number, mainExtra = 0): [number, number][] {
  if (parts === 1) return [[0, N]];
  // shard 0 takes its share plus the extra, leaving every other shard at least one sample
  const first = Math.min(N - (parts - 1), Math.floor(N / parts) + mainExtra);
  const out: [number, number][] = [[0, first]];
  const rest = N - first;
  for (let i = 0; i < parts - 1; i++) out.push([first + Math.floor((i * rest) / (parts - 1)), first + Math.floor(((i + 1) * rest) / (parts - 1))]);
  return out;
}
