/**
 * The multimodal training objective, as Transfusion combines its two losses (one coefficient):
 *
 *   loss = L_text + lambda * L_image
 *
 * L_text: next-token cross-entropy at the text positions of BOTH orders, averaged over the positions
 * that predict a caption token or <|eos|> (pads, and the caption of a CFG-dropped sample, get none).
 * L_image: CausalFusion's dual-factorization diffusion loss on the image tokens of the text-to-image
 * samples: (noise - eps)^2 with the AR loss weights (and the optional foreground weights), averaged over those samples' elements. A
 * captioning sample's image is clean context and gets no loss.
 */
import { tf } from '@causalfusion/backend';
import {
  DEFAULT_RECIPE,
  drawMultimodalRandomness,
  prepareMultimodalStep,
  type MultimodalBatch,
  type MultimodalLossRecipe,
  type MultimodalRandomness,
  type MultimodalRecipe,
} from '@causalfusion/config';
import type { GaussianDiffusion } from '@causalfusion/diffusion';
import { createDiffusion } from '@causalfusion/diffusion';
import type { Rng } from '@causalfusion/rng';
import { AdamW, clipGradNorm } from '@causalfusion/transformer';
import type { MultimodalModel } from './model';

/** Cross-entropy per position of logits [.., V] against integer targets: [positions]. */
export function crossEntropy(logits: tf.Tensor, targets: Int32Array): tf.Tensor1D {
  const V = logits.shape[logits.shape.length - 1]!;
  const flat = tf.reshape(logits, [targets.length, V]);
  const oneHot = new Float32Array(targets.length * V);
  for (let i = 0; i < targets.length; i++) oneHot[i * V + targets[i]] = 1;
  return tf.neg(tf.sum(tf.mul(tf.logSoftmax(flat), tf.tensor2d(oneHot, [targets.length, V])), 1)) as tf.Tensor1D;
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
  recipe: MultimodalLossRecipe,
  nullCaption: ArrayLike<number>,
): MultimodalLosses {
  // the host half (rows of each order, q_sample, the sequences' layout, loss masks): @causalfusion/config
  const step = prepareMultimodalStep(model.config, (x, t, noise) => diffusion.qSample(x, t, noise), { batch, rnd, recipe, nullCaption });
  const textLosses: tf.Tensor[] = [];
  let image: tf.Scalar = tf.scalar(0);
  const t2i = step.textToImage;
  if (t2i) {
    const { logits, eps } = model.forwardTextToImage(t2i);
    const L = model.numTokens;
    image = tf.mean(
      tf.mul(tf.squaredDifference(tf.tensor3d(t2i.noiseShuf, [t2i.N, L, model.tokenDim]), eps), tf.tensor3d(t2i.imageWeights, [t2i.N, L, 1])),
    ) as tf.Scalar;
    textLosses.push(tf.sum(tf.mul(crossEntropy(logits, t2i.targets), tf.tensor1d(t2i.textMask))));
  }
  if (step.caption) {
    const logits = model.forwardCaption({ image: step.caption.image, text: step.caption.text });
    textLosses.push(tf.sum(tf.mul(crossEntropy(logits, step.caption.targets), tf.tensor1d(step.caption.textMask))));
  }
  const text = (textLosses.length ? tf.div(tf.addN(textLosses), step.textCount) : tf.scalar(0)) as tf.Scalar;
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
  nullCaption: ArrayLike<number>,
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
