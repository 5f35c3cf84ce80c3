/**
 * The framework-free half of the training forward: patchify, the per-sample token shuffle, label
 * dropout, the clean context and the generalized causal mask, exactly as the official `forward` prepares
 * them. The tfjs model and the ONNX training graphs both start from {@link prepareTrainingTokens}.
 */
import type { Rng } from '@causalfusion/rng';
import { checkSplitSizes, getAttnMask } from '@causalfusion/sampler';
import { derived, type ModelConfig } from './config';

/** What the training forward needs. Latents are NCHW float32, [N, C, H, W] flattened. */
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
  /** Clean tokens in the sequence (all but the last AR step), and the sequence length T + Lc + L. */
  Lc: number;
  S: number;
  splitSizes: number[];
  /** [N * L] the permutation: shuffled position j of sample n holds raster token ids[n * L + j]. */
  ids: Int32Array;
  /** [N] labels after dropout. */
  labels: Int32Array;
  /** [N, Lc, d] the clean tokens of the first Lc shuffled positions. */
  cleanShuf: Float32Array;
  /** [N, L, d] x_t and its noise (the target), shuffled. */
  noisedShuf: Float32Array;
  noiseShuf: Float32Array;
  /** [S, S] the mask as an additive bias: -inf where masked, else 0. */
  maskBias: Float32Array;
}

function checkLength(name: string, values: ArrayLike<number>, expected: number, layout: string): void {
  if (values == null || values.length !== expected) {
    throw new Error(`${name} has ${values == null ? 'no' : values.length} values, expected ${expected} (${layout})`);
  }
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
  const S = c.numCondTokens + Lc + L;

  // The random draws, in the official order: the shuffle, then label dropout.
  const ids = new Int32Array(N * L);
  if (randomness.idsShuffle) {
    checkLength('idsShuffle', randomness.idsShuffle, N * L, `[N=${N}, L=${L}] permutations`);
    for (let n = 0; n < N; n++) {
      const seen = new Uint8Array(L);
      for (let j = 0; j < L; j++) {
        const id = randomness.idsShuffle[n * L + j];
        if (!Number.isInteger(id) || id < 0 || id >= L || seen[id]) {
          throw new Error(`idsShuffle of sample ${n} is not a permutation of 0..${L - 1} (bad entry ${id} at ${j})`);
        }
        seen[id] = 1;
        ids[n * L + j] = id;
      }
    }
  } else {
    if (!randomness.rng) throw new Error('trainingForward: give randomness.rng, or both idsShuffle and labelDropRand');
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
  const xTok = patchify(inputs.x, N, c.latentChannels, c.inputSize, c.patchSize);
  const xnTok = patchify(inputs.xn, N, c.latentChannels, c.inputSize, c.patchSize);
  const noiseTok = patchify(inputs.noise, N, c.latentChannels, c.inputSize, c.patchSize);
  const cleanShuf = new Float32Array(N * Lc * d);
  const noisedShuf = new Float32Array(N * L * d);
  const noiseShuf = new Float32Array(N * L * d);
  for (let n = 0; n < N; n++) {
    for (let j = 0; j < L; j++) {
      const src = (n * L + ids[n * L + j]) * d;
      noisedShuf.set(xnTok.subarray(src, src + d), (n * L + j) * d);
      noiseShuf.set(noiseTok.subarray(src, src + d), (n * L + j) * d);
      if (j < Lc) cleanShuf.set(xTok.subarray(src, src + d), (n * Lc + j) * d);
    }
  }
  const mask = getAttnMask(L, c.numCondTokens, splitSizes);
  const maskBias = new Float32Array(mask.length);
  for (let i = 0; i < mask.length; i++) maskBias[i] = mask[i] ? -Infinity : 0;
  return { N, L, Lc, S, splitSizes, ids, labels, cleanShuf, noisedShuf, noiseShuf, maskBias };
}

/**
 * Visit every value of N NCHW latents [N, C, size, size] with its place in the token layout [N, L, p*p*C]
 * (the official nchpwq -> nhwpqc): `visit(latentIndex, tokenIndex)`.
 */
function forEachPatchValue(N: number, C: number, size: number, p: number, visit: (latentIndex: number, tokenIndex: number) => void): void {
  const g = size / p;
  const d = p * p * C;
  for (let n = 0; n < N; n++)
    for (let c = 0; c < C; c++)
      for (let y = 0; y < size; y++)
        for (let x = 0; x < size; x++) {
          const token = Math.floor(y / p) * g + Math.floor(x / p);
          const feat = ((y % p) * p + (x % p)) * C + c;
          visit(((n * C + c) * size + y) * size + x, (n * g * g + token) * d + feat);
        }
}

/** NCHW latents [N, C, H, W] -> tokens [N, (H/p)(W/p), p*p*C] in the official order (nchpwq -> nhwpqc). */
export function patchify(latent: ArrayLike<number>, N: number, C: number, size: number, p: number): Float32Array {
  const out = new Float32Array(N * C * size * size);
  forEachPatchValue(N, C, size, p, (li, ti) => {
    out[ti] = latent[li];
  });
  return out;
}

/** The inverse of {@link patchify}: tokens [N, L, p*p*C] -> NCHW [N, C, H, W]. */
export function unpatchify(tokens: ArrayLike<number>, N: number, C: number, size: number, p: number): Float32Array {
  const out = new Float32Array(N * C * size * size);
  forEachPatchValue(N, C, size, p, (li, ti) => {
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
  /** [n, C, H, W] clean latents and [n] labels of the shard. */
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
