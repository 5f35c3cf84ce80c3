/**
 * The framework-free layout of @causalfusion/multimodal's model, as its ONNX training graphs need it:
 * the parameters (state-dict keys in `MultimodalModel.stateEntries()` order, shapes in the training
 * layout = the tfjs variables' layout, nn.Linear weights [in, out]), the two attention masks and the
 * text-loss mask / next-token targets of `multimodalLosses`.
 *
 * @causalfusion/multimodal computes with tfjs (and its tests load this package), so the few rules here
 * are restated instead of imported; the ORT-vs-tfjs parity test of the multimodal package
 * (src/ort-train.test.ts) checks each of them against the original.
 */
import { getAttnMask } from '@causalfusion/sampler';

/** The fields of @causalfusion/multimodal's `MultimodalConfig` the graphs depend on (a MultimodalConfig is one). */
export interface MultimodalModelShape {
  imageHeight: number;
  imageWidth: number;
  channels: number;
  patchSize: number;
  /** Ids per caption row (bos + caption + eos + pads). */
  textLength: number;
  vocabSize: number;
  hiddenSize: number;
  depth: number;
  numHeads: number;
  mlpRatio: number;
}

/** The caption rows' special ids (@causalfusion/multimodal's PAD_ID, BOS_ID, EOS_ID). */
export const MULTIMODAL_PAD_ID = 0;
export const MULTIMODAL_BOS_ID = 1;
export const MULTIMODAL_EOS_ID = 2;

/** Quantities that follow from a config (as multimodalGeometry). */
export function multimodalShapeOf(c: MultimodalModelShape) {
  for (const k of ['imageHeight', 'imageWidth', 'channels', 'patchSize', 'textLength', 'vocabSize', 'hiddenSize', 'depth', 'numHeads'] as const) {
    const v = c[k];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) throw new Error(`multimodal config: ${k} must be a positive integer, got ${String(v)}`);
  }
  if (c.imageHeight % c.patchSize || c.imageWidth % c.patchSize) throw new Error(`multimodal config: patchSize ${c.patchSize} must divide ${c.imageHeight}x${c.imageWidth}`);
  if (c.hiddenSize % c.numHeads) throw new Error(`multimodal config: hiddenSize ${c.hiddenSize} is not divisible by numHeads ${c.numHeads}`);
  if (!(c.mlpRatio > 0)) throw new Error(`multimodal config: mlpRatio must be positive, got ${c.mlpRatio}`);
  const gridH = c.imageHeight / c.patchSize;
  const gridW = c.imageWidth / c.patchSize;
  return {
    /** L: image tokens. */
    numTokens: gridH * gridW,
    tokenDim: c.patchSize * c.patchSize * c.channels,
    headDim: c.hiddenSize / c.numHeads,
    mlpHidden: Math.floor(c.hiddenSize * c.mlpRatio),
  };
}

/** One parameter: its state-dict key, its shape in the training layout, and how the checkpoint stores it. */
export interface MultimodalParamEntry {
  key: string;
  /** Training layout (the tfjs variable's shape; nn.Linear weights [in, out]). */
  shape: number[];
  /** Every parameter of the multimodal model trains (image_pos_embed included). */
  trainable: boolean;
  /** An nn.Linear weight: model.safetensors stores it [out, in], the transpose of `shape`. */
  transposed: boolean;
}

/** The parameters in `MultimodalModel.stateEntries()` order: the order of params and of the gradients. */
export function multimodalParamEntries(config: MultimodalModelShape): MultimodalParamEntry[] {
  const g = multimodalShapeOf(config);
  const D = config.hiddenSize;
  const out: MultimodalParamEntry[] = [];
  const add = (key: string, shape: number[], transposed = false) => out.push({ key, shape, trainable: true, transposed });
  const linear = (prefix: string, fanIn: number, fanOut: number, bias = true) => {
    add(`${prefix}.weight`, [fanIn, fanOut], true);
    if (bias) add(`${prefix}.bias`, [fanOut]);
  };
  const norm = (prefix: string, n: number) => {
    add(`${prefix}.weight`, [n]);
    add(`${prefix}.bias`, [n]);
  };
  add('text_embed.weight', [config.vocabSize, D]);
  add('text_pos_embed', [config.textLength, D]);
  add('image_pos_embed', [g.numTokens, D]);
  linear('x_proj', g.tokenDim, D);
  linear('t_embedder.mlp.0', 256, D);
  linear('t_embedder.mlp.2', D, D);
  for (let i = 0; i < config.depth; i++) {
    norm(`blocks.${i}.norm1`, D);
    linear(`blocks.${i}.attn.qkv`, D, 3 * D, false);
    linear(`blocks.${i}.attn.proj`, D, D);
    norm(`blocks.${i}.attn.q_norm`, g.headDim);
    norm(`blocks.${i}.attn.k_norm`, g.headDim);
    norm(`blocks.${i}.norm2`, D);
    linear(`blocks.${i}.mlp.fc1`, D, g.mlpHidden);
    linear(`blocks.${i}.mlp.fc2`, g.mlpHidden, D);
  }
  norm('final_layer.0', D);
  linear('final_layer.1', D, g.tokenDim);
  norm('lm_head.0', D);
  linear('lm_head.1', D, config.vocabSize);
  return out;
}

/** 1/0 mask -> additive bias (-inf where masked, 0 else). */
export function maskToBias(mask: Uint8Array): Float32Array {
  return Float32Array.from(mask, (m) => (m ? -Infinity : 0));
}

/** The text-to-image mask (1 = masked) of [text T | clean Lc | noised L]: the generalized causal mask, causal text. */
export function multimodalTextToImageMask(textLength: number, numTokens: number, splitSizes: ArrayLike<number>): Uint8Array {
  const mask = getAttnMask(numTokens, textLength, splitSizes);
  const S = Math.sqrt(mask.length);
  for (let r = 0; r < textLength; r++) for (let c = r + 1; c < textLength; c++) mask[r * S + c] = 1;
  return mask;
}

/** The captioning mask (1 = masked) of [image L | text T]: the image sees itself; text the image and earlier text. */
export function multimodalCaptionMask(numTokens: number, textLength: number): Uint8Array {
  const S = numTokens + textLength;
  const mask = new Uint8Array(S * S).fill(1);
  for (let r = 0; r < S; r++) mask.fill(0, r * S, r * S + (r < numTokens ? numTokens : r + 1));
  return mask;
}

/**
 * Text positions with a loss (multimodal's textLossMask): position j counts while id j+1 is a caption
 * token or the <|eos|>; rows flagged `dropped` (CFG-dropped captions) get none. [rows, T] of 0 / 1.
 */
export function multimodalTextLossMask(text: ArrayLike<number>, textLength: number, dropped?: ArrayLike<boolean | number>): Float32Array {
  const N = text.length / textLength;
  const mask = new Float32Array(text.length);
  for (let n = 0; n < N; n++) {
    if (dropped && dropped[n]) continue;
    for (let j = 0; j + 1 < textLength; j++) {
      const next = text[n * textLength + j + 1];
      if (next === MULTIMODAL_PAD_ID || next === MULTIMODAL_BOS_ID) break;
      mask[n * textLength + j] = 1;
      if (next === MULTIMODAL_EOS_ID) break;
    }
  }
  return mask;
}

/** Next-token targets of caption rows (multimodal's textTargets): the row shifted left, a pad last. */
export function multimodalTextTargets(text: ArrayLike<number>, textLength: number): Int32Array {
  const out = new Int32Array(text.length);
  for (let i = 0; i < text.length; i++) out[i] = (i + 1) % textLength === 0 ? MULTIMODAL_PAD_ID : text[i + 1];
  return out;
}
