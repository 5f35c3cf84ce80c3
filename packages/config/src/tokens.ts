/**
 * The framework-free half of the training forward: patchify, the per-sample token shuffle, label
 * dropout, the clean context and the generalized causal mask, exactly as the official `forward` prepares
 * them. The tfjs model and the ONNX training graphs both start from {@link prepareTrainingTokens}.
 */
import type { Rng } from '@causalfusion/rng';
import { checkSplitSizes, getAttnMask } from '@causalfusion/sampler';
import { derived, type ModelConfig } from './config';

/** What the training forward needs. Latents are NCHW float32, [N, channels, size, size] flattened. */
export interface TrainingInputs {
  /** The clean latent x0. */
  x: ArrayLike<number>;
  /** The noised latent x_t (q_sample of x at t with `noise`). */
  xn: ArrayLike<number>;
  /** The noise of x_t: the regression target. */
  noise: ArrayLike<number>;
  /** [N] original diffusion timesteps (0..999). */
  t: ArrayLike<number>;
  /** [N] class labels (numClasses = the null class). */
  y: ArrayLike<number>;
  /** AR step sizes, shared by the batch; the last step has no clean copy in the sequence. */
  splitSizes: ArrayLike<number>;
}

/**
 * The random draws of the training forward. Give `rng` to draw them (a per-sample token permutation,
 * then one uniform per sample for label dropout, in the official order), or give them explicitly.
 */
export interface TrainingRandomness {
  rng?: Rng;
  /** [N, L] flattened: shuffled position j of sample n holds raster token idsShuffle[n*L + j]. */
  idsShuffle?: ArrayLike<number>;
  /** [N] uniforms in [0, 1): a label is dropped to the null class when its value < classDropoutProb. */
  labelDropRand?: ArrayLike<number>;
}

export interface PreparedTokens {
  N: number;
  L: number;
  /** Context tokens: the clean copies of all but the last AR step. */
  Lc: number;
  /** Sequence length C + Lc + L (cond tokens, context, noised tokens). */
  seqLen: number;
  splitSizes: number[];
  /** [N * L] the permutation: shuffled position j of sample n holds raster token ids[n * L + j]. */
  ids: Int32Array;
  /** [N] labels after dropout. */
  labels: Int32Array;
  /** [N, Lc, d] the clean tokens of the first Lc shuffled positions, and their raster positions [N, Lc]. */
  cleanShuf: Float32Array;
  cleanPositions: Int32Array;
  /** [N, L, d] x_t and its noise (the target), shuffled. */
  noisedShuf: Float32Array;
  noiseShuf: Float32Array;
  /** [seqLen, seqLen] the mask as an additive bias: -inf where masked, else 0. */
  maskBias: Float32Array;
}

export function checkLength(name: string, values: ArrayLike<number> | null | undefined, expected: number, layout: string): void {
  if (values == null || values.length !== expected) {
    throw new Error(`${name} has ${values == null ? 'no' : values.length} values, expected ${expected} (${layout})`);
  }
}

/** `given` [N, L] as checked permutations (each row a permutation of 0..L-1), or raster order when undefined. */
export function checkPermutations(name: string, given: ArrayLike<number> | undefined, N: number, L: number): Int32Array {
  const ids = new Int32Array(N * L);
  if (!given) {
    for (let i = 0; i < N * L; i++) ids[i] = i % L;
    return ids;
  }
  checkLength(name, given, N * L, `[N=${N}, L=${L}] permutations`);
  for (let n = 0; n < N; n++) {
    const seen = new Uint8Array(L);
    for (let j = 0; j < L; j++) {
      const id = given[n * L + j];
      if (!Number.isInteger(id) || id < 0 || id >= L || seen[id]) {
        throw new Error(`${name} of sample ${n} is not a permutation of 0..${L - 1} (bad entry ${id} at ${j})`);
      }
      seen[id] = 1;
      ids[n * L + j] = id;
    }
  }
  return ids;
}

/**
 * Tokens [N, L, d] in raster order -> the first `count` shuffled positions of each sample, [N, count, d]:
 * shuffled position j of sample n holds raster token ids[n * L + j].
 */
export function shuffleTokens(tokens: ArrayLike<number>, ids: Int32Array, N: number, L: number, d: number, count = L): Float32Array {
  const out = new Float32Array(N * count * d);
  for (let n = 0; n < N; n++)
    for (let j = 0; j < count; j++) {
      const src = (n * L + ids[n * L + j]) * d;
      const dst = (n * count + j) * d;
      for (let k = 0; k < d; k++) out[dst + k] = tokens[src + k];
    }
  return out;
}

/** The raster positions of the first `count` shuffled positions of each sample: [N, count]. */
export function shuffledPositions(ids: Int32Array, N: number, L: number, count: number): Int32Array {
  const out = new Int32Array(N * count);
  for (let n = 0; n < N; n++) out.set(ids.subarray(n * L, n * L + count), n * count);
  return out;
}

/** A 1/0 mask as the additive attention bias: -inf where masked, 0 elsewhere. */
export function maskToBias(mask: ArrayLike<number>): Float32Array {
  return Float32Array.from(mask, (m) => (m ? -Infinity : 0));
}

/** Check the inputs, draw (or take) the shuffle and label dropout in the official order, and lay out the tokens. */
export function prepareTrainingTokens(c: ModelConfig, inputs: TrainingInputs, randomness: TrainingRandomness = {}): PreparedTokens {
  const geo = derived(c);
  const N = inputs.t.length;
  const L = geo.numTokens;
  const d = geo.tokenDim;
  if (N === 0) throw new Error('trainingForward: the batch is empty (t has no entries)');
  checkLength('y', inputs.y, N, 'one label per sample, as t');
  const latentSize = N * c.latentChannels * c.inputSize * c.inputSize;
  const layout = `NCHW [${N}, ${c.latentChannels}, ${c.inputSize}, ${c.inputSize}]`;
  checkLength('x', inputs.x, latentSize, layout);
  checkLength('xn', inputs.xn, latentSize, layout);
  checkLength('noise', inputs.noise, latentSize, layout);
  const splitSizes = Array.from(inputs.splitSizes);
  checkSplitSizes(splitSizes, L);
  const Lc = L - splitSizes[splitSizes.length - 1];
  const seqLen = c.numCondTokens + Lc + L;

  // The random draws, in the official order: the shuffle, then label dropout.
  let ids: Int32Array;
  if (randomness.idsShuffle) ids = checkPermutations('idsShuffle', randomness.idsShuffle, N, L);
  else {
    if (!randomness.rng) throw new Error('trainingForward: give randomness.rng, or both idsShuffle and labelDropRand');
    ids = new Int32Array(N * L);
    for (let n = 0; n < N; n++) ids.set(randomness.rng.permutation(L), n * L);
  }
  const labels = new Int32Array(N);
  const top = geo.nullClass ?? c.numClasses - 1;
  for (let n = 0; n < N; n++) {
    const y = inputs.y[n];
    if (!Number.isInteger(y) || y < 0 || y > top) {
      const nullNote = geo.nullClass === null ? ' (this model has no null class: classDropoutProb is 0)' : ` (${geo.nullClass} = the null class)`;
      throw new Error(`y: label ${y} at index ${n} is not a class of this model; use 0..${top}${nullNote}`);
    }
    labels[n] = y;
  }
  if (geo.nullClass !== null) {
    let drop: ArrayLike<number>;
    if (randomness.labelDropRand) {
      checkLength('labelDropRand', randomness.labelDropRand, N, 'one uniform per sample');
      drop = randomness.labelDropRand;
    } else {
      if (!randomness.rng) throw new Error('trainingForward: give randomness.rng, or both idsShuffle and labelDropRand');
      drop = randomness.rng.uniformArray(N);
    }
    for (let n = 0; n < N; n++) if (drop[n] < c.classDropoutProb) labels[n] = geo.nullClass;
  }

  // Patchify and shuffle: shuffled position j holds raster token ids[j].
  const tokens = (latent: ArrayLike<number>) => patchify(latent, N, c.latentChannels, c.inputSize, c.patchSize);
  return {
    N,
    L,
    Lc,
    seqLen,
    splitSizes,
    ids,
    labels,
    cleanShuf: shuffleTokens(tokens(inputs.x), ids, N, L, d, Lc),
    cleanPositions: shuffledPositions(ids, N, L, Lc),
    noisedShuf: shuffleTokens(tokens(inputs.xn), ids, N, L, d),
    noiseShuf: shuffleTokens(tokens(inputs.noise), ids, N, L, d),
    maskBias: maskToBias(getAttnMask(L, c.numCondTokens, splitSizes)),
  };
}

/**
 * Visit every value of N NCHW latents [N, channels, size, size] with its place in the token layout
 * [N, L, p*p*channels] (the official nchpwq -> nhwpqc): `visit(latentIndex, tokenIndex)`.
 */
function forEachPatchValue(N: number, channels: number, size: number, p: number, visit: (latentIndex: number, tokenIndex: number) => void): void {
  const g = size / p;
  const d = p * p * channels;
  for (let n = 0; n < N; n++)
    for (let ch = 0; ch < channels; ch++)
      for (let y = 0; y < size; y++)
        for (let x = 0; x < size; x++) {
          const token = Math.floor(y / p) * g + Math.floor(x / p);
          const feat = ((y % p) * p + (x % p)) * channels + ch;
          visit(((n * channels + ch) * size + y) * size + x, (n * g * g + token) * d + feat);
        }
}

/** NCHW latents [N, channels, size, size] -> tokens [N, L, d] (L = (size/p)^2, d = p*p*channels) in the official order (nchpwq -> nhwpqc). */
export function patchify(latent: ArrayLike<number>, N: number, channels: number, size: number, p: number): Float32Array {
  const out = new Float32Array(N * channels * size * size);
  forEachPatchValue(N, channels, size, p, (li, ti) => {
    out[ti] = latent[li];
  });
  return out;
}

/** The inverse of {@link patchify}: tokens [N, L, d] -> NCHW [N, channels, size, size]. */
export function unpatchify(tokens: ArrayLike<number>, N: number, channels: number, size: number, p: number): Float32Array {
  const out = new Float32Array(N * channels * size * size);
  forEachPatchValue(N, channels, size, p, (li, ti) => {
    out[li] = tokens[ti];
  });
  return out;
}

/**
 * A batch (or a data-parallel shard of one) with every random draw of its training step already made,
 * as the trainers pass it to a runtime: clean latents, labels, timesteps, noise, permutations, label
 * dropout uniforms, the AR split shared by the batch, and what the loss is averaged over.
 */
export interface TrainingShard {
  /** [n, channels, size, size] clean latents and [n] labels of the shard. */
  x: Float32Array;
  y: Int32Array;
  t: Int32Array;
  noise: Float32Array;
  idsShuffle: Int32Array;
  labelDropRand: Float64Array;
  splitSizes: number[];
  /** Samples in the whole batch: the loss is a sum over the shard divided by the batch's element count. */
  batchSize: number;
  maxArWeight: number;
  minArWeight: number;
  /** [L] the AR loss weights per shuffled position; default: linear from maxArWeight to minArWeight over the split. */
  arWeights?: ArrayLike<number>;
}
