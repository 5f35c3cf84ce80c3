/**
 * The training loss of @causalfusion/multimodal's model (one transformer for text-to-image and
 * captioning) and the gradient of every parameter as ONE ONNX graph, emitted by {@link GradGraph}. It is
 * `multimodalLosses` of that package, op for op:
 *
 *   text-to-image rows (G): [text Lt | clean Lc | noised L] under the generalized causal mask with causal
 *     text; text = text_embed[id] + text_pos, clean = x_proj(x) + image_pos[q], noised = x_proj(x_t) +
 *     image_pos[q] + t_embedder(t). lm_head on the text positions (next-token cross-entropy), final_layer
 *     on the noised ones (AR-weighted eps-MSE against the shuffled noise).
 *   captioning rows (M): [image L | text Lt]; the image sees itself, text the image and earlier text;
 *     lm_head on the text positions.
 *
 *   text_loss  = sum over both groups of CE * text_weights     (weights: loss mask / masked-position count)
 *   image_loss = sum of image_weights * (target - eps)^2       (weights: AR x foreground weight / (G * L * tokenDim))
 *   loss       = text_loss + loss_lambda * image_loss
 *
 * The weights fold in the normalisations, so a step's loss is exactly the tfjs one. Inputs are the
 * parameters (keys of `multimodalParamEntries`, training layout) and the host-prepared tensors of
 * {@link MULTIMODAL_TRAIN_IO}; outputs `loss`, `text_loss`, `image_loss` (with text-to-image rows) and
 * `grad.<key>` per parameter the variant's loss depends on. Rows, and the clean-context length, are
 * dynamic. ORT has no empty tensors in Gemm, so a step's shape picks one of the variants: text-to-image
 * rows with or without a clean context (one AR step has none), captioning rows or not.
 */
import {
  BODY_KEYS,
  captionMask,
  maskToBias,
  MULTIMODAL_KEYS as K,
  multimodalGeometry,
  multimodalParamEntries,
  validateMultimodalShape,
  type MultimodalModelShape,
} from '@causalfusion/config';
import { GradGraph } from './autodiff';
import { attr, FLOAT, INT64, valueInfo } from './graph';
import { TransformerLayers } from './train-graph';

export const MULTIMODAL_TRAIN_IO = {
  /** Text-to-image rows: caption rows as fed (null caption where dropped) [G, Lt] int64. */
  t2iText: 't2i_text',
  /** [G] original timesteps (float). */
  t2iTimestep: 't2i_timestep',
  /** [G, L, d] x_t in shuffled order, and its raster positions [G, L] int64. */
  t2iNoised: 't2i_noised',
  t2iPositions: 't2i_positions',
  /** [G, Lc, d] clean tokens of the first Lc shuffled positions, and their positions [G, Lc] (withClean). */
  t2iClean: 't2i_clean',
  t2iCleanPositions: 't2i_clean_positions',
  /** [seqLen, seqLen] additive mask (0 / -inf), seqLen = textLength + Lc + L. */
  t2iMask: 't2i_mask',
  /** [G, L, d] the noise in shuffled order (eps target), and the per-token weights [G, L, 1]. */
  t2iTarget: 't2i_target',
  t2iImageWeights: 't2i_image_weights',
  /** [G, Lt] next-token targets (int64) and their weights (loss mask / count). */
  t2iLabels: 't2i_labels',
  t2iTextWeights: 't2i_text_weights',
  /** Captioning rows: [M, L, d] clean image tokens (raster), [M, Lt] caption rows, targets and weights. */
  capImage: 'cap_image',
  capText: 'cap_text',
  capLabels: 'cap_labels',
  capTextWeights: 'cap_text_weights',
  /** [] lambda of loss = text_loss + lambda * image_loss. */
  lossLambda: 'loss_lambda',
  loss: 'loss',
  textLoss: 'text_loss',
  imageLoss: 'image_loss',
  grad: (key: string) => `grad.${key}`,
} as const;

/** Which rows a step has: text-to-image rows (with or without a clean context) and/or captioning rows. */
export interface MultimodalGraphVariant {
  textToImage: boolean;
  /** Text-to-image rows have a clean context (more than one AR step). Ignored without text-to-image rows. */
  withClean: boolean;
  caption: boolean;
}

/** Parameters a captioning-only step does not reach (their gradient is zero there). */
const IMAGE_ONLY_PREFIXES = [BODY_KEYS.timestepFc1, BODY_KEYS.timestepFc2, BODY_KEYS.finalNorm, BODY_KEYS.finalLinear].map((k) => `${k}.`);

/** Build the training graph of a multimodal model for one step shape (serialized ModelProto). */
export function buildMultimodalTrainingGraph(config: MultimodalModelShape, variant: MultimodalGraphVariant): Uint8Array {
  if (!variant.textToImage && !variant.caption) throw new Error('buildMultimodalTrainingGraph: a step needs text-to-image or captioning rows');
  validateMultimodalShape(config);
  const geo = multimodalGeometry(config);
  const D = config.hiddenSize;
  const Lt = config.textLength;
  const V = config.vocabSize;
  const L = geo.numTokens;
  const d = geo.tokenDim;
  const withClean = variant.textToImage && variant.withClean;
  const entries = multimodalParamEntries(config);
  const gg = new GradGraph();
  for (const e of entries) if (e.trainable) gg.param(e.key);
  const io = MULTIMODAL_TRAIN_IO;
  const c = (name: string, values: number[]) => gg.g.constant(name, values, 'int64');

  /** text_embed[ids] + text_pos for ids [R, Lt] -> [R, Lt, D]. */
  const embedText = (ids: string) => gg.addBroadcast(gg.gather(K.textEmbed, ids, V, D), K.textPos, [0], false);
  /** lm_head on hidden states [R*Lt, D]: the weighted next-token cross-entropy against labels [R, Lt]. */
  const textLoss = (layers: TransformerLayers, h: string, labels: string, weights: string) => {
    const logits = layers.head(h, K.lmNorm, K.lmLinear);
    const flat = c('shape.flat', [-1]);
    return gg.weightedCrossEntropy(logits, gg.op('Reshape', [labels, flat]), gg.op('Reshape', [weights, flat]), V);
  };

  const textLosses: string[] = [];
  let imageLoss: string | null = null;
  if (variant.textToImage) {
    const layers = new TransformerLayers(gg, D, config.numHeads, gg.op('Shape', [io.t2iTimestep]));
    const text = embedText(io.t2iText);
    const tEmbed = gg.reshape(layers.timestepEmbed(io.t2iTimestep), [-1, 1, D]);
    const imageRows = (tokens: string, positions: string) =>
      gg.add(layers.project(tokens, d, gg.op('Shape', [positions])), gg.gather(K.imagePos, positions, L, D));
    const noised = gg.addBroadcast(imageRows(io.t2iNoised, io.t2iPositions), tEmbed, [1], true);
    const parts = withClean ? [text, imageRows(io.t2iClean, io.t2iCleanPositions), noised] : [text, noised];
    const h = layers.blocks(gg.concat(parts, 1), config.depth, io.t2iMask);
    const sizes = withClean
      ? gg.op(
          'Concat',
          [c(`len.${Lt}`, [Lt]), gg.op('Shape', [io.t2iCleanPositions], [attr.int('start', 1), attr.int('end', 2)]), c(`len.${L}`, [L])],
          [attr.int('axis', 0)],
        )
      : [Lt, L];
    const pieces = gg.split(h, 1, sizes, parts.length);
    textLosses.push(textLoss(layers, gg.reshape(pieces[0], [-1, D]), io.t2iLabels, io.t2iTextWeights));
    const eps = layers.head(gg.reshape(pieces[pieces.length - 1], [-1, D]));
    imageLoss = gg.weightedSquaredError(gg.reshape(eps, [-1, L, d]), io.t2iTarget, io.t2iImageWeights);
  }
  if (variant.caption) {
    const layers = new TransformerLayers(gg, D, config.numHeads, gg.op('Shape', [io.capText], [attr.int('start', 0), attr.int('end', 1)]));
    const image = gg.addBroadcast(
      layers.project(io.capImage, d, gg.op('Shape', [io.capImage], [attr.int('start', 0), attr.int('end', 2)])),
      K.imagePos,
      [0],
      false,
    );
    const seqLen = L + Lt;
    const mask = gg.g.constant('cap_mask', maskToBias(captionMask(L, Lt)), 'float', [seqLen, seqLen]);
    const h = layers.blocks(gg.concat([image, embedText(io.capText)], 1), config.depth, mask);
    const [, hText] = gg.split(h, 1, [L, Lt], 2);
    textLosses.push(textLoss(layers, gg.reshape(hText, [-1, D]), io.capLabels, io.capTextWeights));
  }
  const text = textLosses.length === 2 ? gg.add(textLosses[0], textLosses[1]) : textLosses[0];
  const loss = imageLoss ? gg.add(text, gg.weightedSum(imageLoss, io.lossLambda)) : text;
  gg.g.op('Identity', [loss], [], io.loss);
  gg.g.op('Identity', [text], [], io.textLoss);
  if (imageLoss) gg.g.op('Identity', [imageLoss], [], io.imageLoss);

  const trainable = entries.filter((e) => e.trainable);
  const grads = gg.gradients(
    loss,
    trainable.map((e) => e.key),
  );
  const gradOutputs: typeof trainable = [];
  for (const e of trainable) {
    const g = grads.get(e.key);
    if (!g) {
      // only a captioning-only step may miss the timestep embedder and the eps head; anything else is a wiring mistake
      if (!variant.textToImage && IMAGE_ONLY_PREFIXES.some((p) => e.key.startsWith(p))) continue;
      throw new Error(`internal: the loss does not depend on ${e.key}`);
    }
    gg.g.op('Identity', [g], [], io.grad(e.key));
    gradOutputs.push(e);
  }

  const inputs = [...entries.map((e) => valueInfo(e.key, FLOAT, e.shape))];
  if (variant.textToImage) {
    inputs.push(
      valueInfo(io.t2iText, INT64, ['G', Lt]),
      valueInfo(io.t2iTimestep, FLOAT, ['G']),
      valueInfo(io.t2iNoised, FLOAT, ['G', L, d]),
      valueInfo(io.t2iPositions, INT64, ['G', L]),
      ...(withClean ? [valueInfo(io.t2iClean, FLOAT, ['G', 'Lc', d]), valueInfo(io.t2iCleanPositions, INT64, ['G', 'Lc'])] : []),
      valueInfo(io.t2iMask, FLOAT, ['seqLen', 'seqLen']),
      valueInfo(io.t2iTarget, FLOAT, ['G', L, d]),
      valueInfo(io.t2iImageWeights, FLOAT, ['G', L, 1]),
      valueInfo(io.t2iLabels, INT64, ['G', Lt]),
      valueInfo(io.t2iTextWeights, FLOAT, ['G', Lt]),
      valueInfo(io.lossLambda, FLOAT, []),
    );
  }
  if (variant.caption) {
    inputs.push(
      valueInfo(io.capImage, FLOAT, ['M', L, d]),
      valueInfo(io.capText, INT64, ['M', Lt]),
      valueInfo(io.capLabels, INT64, ['M', Lt]),
      valueInfo(io.capTextWeights, FLOAT, ['M', Lt]),
    );
  }
  const outputs = [
    valueInfo(io.loss, FLOAT, []),
    valueInfo(io.textLoss, FLOAT, []),
    ...(imageLoss ? [valueInfo(io.imageLoss, FLOAT, [])] : []),
    ...gradOutputs.map((e) => valueInfo(io.grad(e.key), FLOAT, e.shape)),
  ];
  return gg.g.finish('causalfusion_multimodal_train', inputs, outputs, true);
}
