/**
 * The multimodal training objective, as Transfusion combines its two losses (one coefficient):
 *
 *   loss = L_text + lambda * L_image
 *
 * L_text: next-token cross-entropy at the text positions of BOTH orders, averaged over the positions
 * that predict a caption token or <|eos|> (pads, and the caption of a CFG-dropped sample, get none).
 * L_image: CausalFusion's dual-factorization diffusion loss on the image tokens of the text-to-image
 * samples: (noise - eps)^2 with the AR loss weights, averaged over those samples' elements. A
 * captioning sample's image is clean context and gets no loss.
 */
import { tf } from '@causalfusion/backend';
import type { GaussianDiffusion } from '@causalfusion/diffusion';
import { createDiffusion } from '@causalfusion/diffusion';
import type { Rng } from '@causalfusion/rng';
import { getArWeights, splitIntegerExpDecay } from '@causalfusion/sampler';
import { AdamW, clipGradNorm } from '@causalfusion/transformer';
import { textLossMask, textTargets } from './layout';
import type { MultimodalModel } from './model';

export interface MultimodalRecipe {
  /** lambda: weight of the image (diffusion) loss against the text loss (Transfusion uses 5). */
  lossLambda: number;
  /** Probability that a sample is trained in the captioning order [image | text]. */
  captionProb: number;
  /** AR-step decay of the split sizes; maxArSteps caps the number of AR steps (1 = plain diffusion, Transfusion-style). */
  arStepDecay: number;
  maxArSteps: number;
  maxArWeight: number;
  minArWeight: number;
  /** `random`: a fresh token permutation per text-to-image sample (the official recipe); `raster`: none. */
  order: 'random' | 'raster';
}

export const DEFAULT_RECIPE: MultimodalRecipe = {
  lossLambda: 5, captionProb: 0.5, arStepDecay: 0.9, maxArSteps: Infinity, maxArWeight: 2, minArWeight: 1, order: 'random',
};

/** Cross-entropy per position of logits [.., V] against integer targets: [positions]. */
export function crossEntropy(logits: tf.Tensor, targets: Int32Array): tf.Tensor1D {
  const V = logits.shape[logits.shape.length - 1]!;
  const flat = tf.reshape(logits, [targets.length, V]);
  const oneHot = new Float32Array(targets.length * V);
  for (let i = 0; i < targets.length; i++) oneHot[i * V + targets[i]] = 1;
  return tf.neg(tf.sum(tf.mul(tf.logSoftmax(flat), tf.tensor2d(oneHot, [targets.length, V])), 1)) as tf.Tensor1D;
}

/** One training batch: per sample an image (tokens, raster), one caption row, and its order. */
export interface MultimodalBatch {
  /** [N, L, tokenDim] clean image tokens in [-1, 1]. */
  tokens: Float32Array;
  /** [N, T] caption rows. */
  text: Int32Array;
}

/** Every random draw of one step (drawn by {@link drawMultimodalRandomness}). */
export interface MultimodalRandomness {
  /** [N] 1 = captioning order. */
  caption: Uint8Array;
  /** [N] 1 = caption replaced by the null caption (text-to-image samples only). */
  dropped: Uint8Array;
  /** [N] timesteps (used by text-to-image samples). */
  t: Int32Array;
  splitSizes: number[];
  /** [N, L, tokenDim] noise. */
  noise: Float32Array;
  /** [N, L] per-sample permutations. */
  idsShuffle: Int32Array;
}

export function drawMultimodalRandomness(
  rng: Rng,
  N: number,
  L: number,
  tokenDim: number,
  numTimesteps: number,
  recipe: MultimodalRecipe,
  captionDropoutProb: number,
): MultimodalRandomness {
  const caption = Uint8Array.from({ length: N }, () => (rng.uniform() < recipe.captionProb ? 1 : 0));
  const dropped = Uint8Array.from({ length: N }, (_, n) => (!caption[n] && rng.uniform() < captionDropoutProb ? 1 : 0));
  const t = Int32Array.from({ length: N }, () => rng.uniformInt(numTimesteps));
  const splitSizes = splitIntegerExpDecay(L, recipe.arStepDecay, rng);
  const noise = new Float32Array(N * L * tokenDim);
  rng.fillNormal(noise);
  const idsShuffle = new Int32Array(N * L);
  for (let n = 0; n < N; n++) {
    if (recipe.order === 'random') idsShuffle.set(rng.permutation(L), n * L);
    else for (let j = 0; j < L; j++) idsShuffle[n * L + j] = j;
  }
  return { caption, dropped, t, splitSizes: capArSteps(splitSizes, recipe.maxArSteps), noise, idsShuffle };
}

/** Merge the last AR steps until at most `maxSteps` remain (maxSteps 1: plain diffusion over all tokens). */
export function capArSteps(splitSizes: number[], maxSteps: number): number[] {
  if (!(maxSteps >= 1)) throw new RangeError(`maxArSteps must be >= 1, got ${maxSteps}`);
  if (splitSizes.length <= maxSteps) return splitSizes;
  const head = splitSizes.slice(0, maxSteps - 1);
  const tail = splitSizes.slice(maxSteps - 1).reduce((a, b) => a + b, 0);
  return [...head, tail];
}

export interface MultimodalLosses {
  /** lambda-weighted total (what is differentiated), and its parts. */
  total: tf.Scalar;
  text: tf.Scalar;
  image: tf.Scalar;
}

/**
 * The losses of a batch under given randomness (not tidied; call inside tf.variableGrads). Samples with
 * `caption[n]` run in the captioning order, the others text-to-image; both contribute to L_text.
 */
export function multimodalLosses(
  model: MultimodalModel,
  diffusion: GaussianDiffusion,
  batch: MultimodalBatch,
  rnd: MultimodalRandomness,
  recipe: Pick<MultimodalRecipe, 'lossLambda' | 'maxArWeight' | 'minArWeight'>,
  nullCaption: Int32Array,
): MultimodalLosses {
  const T = model.config.textLength;
  const L = model.numTokens;
  const d = model.tokenDim;
  const N = batch.text.length / T;
  const per = L * d;
  const t2i = [...Array(N).keys()].filter((n) => !rnd.caption[n]);
  const cap = [...Array(N).keys()].filter((n) => rnd.caption[n]);
  const textLosses: tf.Tensor[] = [];
  let textCount = 0;
  let image: tf.Scalar = tf.scalar(0);

  if (t2i.length) {
    const G = t2i.length;
    const text = new Int32Array(G * T);
    const x = new Float32Array(G * per);
    const noise = new Float32Array(G * per);
    const ids = new Int32Array(G * L);
    t2i.forEach((n, i) => {
      text.set(rnd.dropped[n] ? nullCaption : batch.text.subarray(n * T, (n + 1) * T), i * T);
      x.set(batch.tokens.subarray(n * per, (n + 1) * per), i * per);
      noise.set(rnd.noise.subarray(n * per, (n + 1) * per), i * per);
      ids.set(rnd.idsShuffle.subarray(n * L, (n + 1) * L), i * L);
    });
    const t = t2i.map((n) => rnd.t[n]);
    // q_sample per sample, elementwise on the token layout (the layout does not matter for q_sample)
    const xn = Float32Array.from(diffusion.qSample(x, t, noise));
    const { logits, eps } = model.forwardTextToImage({ text, x, xn, t, splitSizes: rnd.splitSizes, idsShuffle: ids });
    // the noise in shuffled order, as eps
    const noiseShuf = new Float32Array(G * per);
    for (let g = 0; g < G; g++)
      for (let j = 0; j < L; j++) {
        const src = (g * L + ids[g * L + j]) * d;
        noiseShuf.set(noise.subarray(src, src + d), (g * L + j) * d);
      }
    const weights = getArWeights(rnd.splitSizes, recipe.maxArWeight, recipe.minArWeight, 'linear');
    image = tf.mean(tf.mul(tf.squaredDifference(tf.tensor3d(noiseShuf, [G, L, d]), eps), tf.tensor3d(weights, [1, L, 1]))) as tf.Scalar;
    const mask = textLossMask(text, T, t2i.map((n) => rnd.dropped[n]));
    textLosses.push(tf.sum(tf.mul(crossEntropy(logits, textTargets(text, T)), tf.tensor1d(mask))));
    textCount += mask.reduce((a, b) => a + b, 0);
  }
  if (cap.length) {
    const M = cap.length;
    const text = new Int32Array(M * T);
    const img = new Float32Array(M * per);
    cap.forEach((n, i) => {
      text.set(batch.text.subarray(n * T, (n + 1) * T), i * T);
      img.set(batch.tokens.subarray(n * per, (n + 1) * per), i * per);
    });
    const logits = model.forwardCaption({ image: img, text });
    const mask = textLossMask(text, T);
    textLosses.push(tf.sum(tf.mul(crossEntropy(logits, textTargets(text, T)), tf.tensor1d(mask))));
    textCount += mask.reduce((a, b) => a + b, 0);
  }
  const text = (textLosses.length ? tf.div(tf.addN(textLosses), Math.max(1, textCount)) : tf.scalar(0)) as tf.Scalar;
  const total = tf.add(text, tf.mul(image, recipe.lossLambda)) as tf.Scalar;
  return { total, text, image };
}

export interface MultimodalStepResult {
  loss: number;
  textLoss: number;
  imageLoss: number;
  gradNorm: number;
  splitSizes: number[];
}

/**
 * One optimisation step: draw the step's randomness, the losses, backward, global-norm clip, AdamW.
 * (apps/train runs the same pieces with warmup and an EMA around them.)
 */
export function multimodalTrainStep(
  model: MultimodalModel,
  optimizer: AdamW,
  batch: MultimodalBatch,
  rng: Rng,
  nullCaption: Int32Array,
  options: Partial<MultimodalRecipe> & { diffusion?: GaussianDiffusion; clipNorm?: number } = {},
): MultimodalStepResult {
  const recipe = { ...DEFAULT_RECIPE, ...options };
  const diffusion = options.diffusion ?? createDiffusion({ respacing: '' });
  const N = batch.text.length / model.config.textLength;
  const rnd = drawMultimodalRandomness(rng, N, model.numTokens, model.tokenDim, diffusion.numTimesteps, recipe, model.config.captionDropoutProb);
  let parts: number[] = [];
  const { value, grads } = tf.variableGrads(() => {
    const l = multimodalLosses(model, diffusion, batch, rnd, recipe, nullCaption);
    parts = [l.text.dataSync()[0], l.image.dataSync()[0]];
    return l.total;
  }, optimizer.variables);
  const clipped = clipGradNorm(grads, options.clipNorm ?? 1);
  optimizer.step(clipped.grads);
  tf.dispose(clipped.grads);
  const loss = value.dataSync()[0];
  value.dispose();
  return { loss, textLoss: parts[0], imageLoss: parts[1], gradNorm: clipped.norm, splitSizes: rnd.splitSizes };
}
