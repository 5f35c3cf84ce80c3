/**
 * `@causalfusion/multimodal/layout`: the framework-free rules of the multimodal model, for every runtime
 * that computes it (this package's tfjs model and @causalfusion/onnx's training graphs use these, not
 * copies): the config and its geometry / validation, the caption rows' special ids, the parameters
 * (state-dict keys in `MultimodalModel.stateEntries()` order, training-layout shapes), the two attention
 * masks and the text loss's mask and next-token targets.
 *
 * No tfjs: this module and everything it imports (./config, @causalfusion/sampler) load without it.
 */
import { getAttnMask } from '@causalfusion/sampler';
import { multimodalGeometry, type MultimodalModelShape } from './config';

export {
  CONFIG_FORMAT, multimodalConfigFromJson, multimodalConfigToJson, multimodalGeometry, validateMultimodalConfig, validateMultimodalShape,
} from './config';
export type { MultimodalConfig, MultimodalModelShape } from './config';

/** The caption rows' special ids (the tokenizer's <|pad|>, <|bos|>, <|eos|>). */
export const PAD_ID = 0;
export const BOS_ID = 1;
export const EOS_ID = 2;

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

/** The parameters in `MultimodalModel.stateEntries()` order: the order of a checkpoint, of params and of gradients. */
export function multimodalParamEntries(config: MultimodalModelShape): MultimodalParamEntry[] {
  const g = multimodalGeometry(config);
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

/**
 * The text-to-image mask (1 = masked; row = query, column = key) of [text T | clean Lc | noised L]:
 * CausalFusion's generalized causal mask with the text as cond tokens, made causal inside the text.
 */
export function textToImageMask(textLength: number, numTokens: number, splitSizes: ArrayLike<number>): Uint8Array {
  const mask = getAttnMask(numTokens, textLength, splitSizes);
  const S = Math.sqrt(mask.length);
  for (let r = 0; r < textLength; r++) for (let c = r + 1; c < textLength; c++) mask[r * S + c] = 1;
  return mask;
}

/** The captioning mask of [image L | text T]: the image sees itself; text sees the image and earlier text. */
export function captionMask(numTokens: number, textLength: number): Uint8Array {
  const S = numTokens + textLength;
  const mask = new Uint8Array(S * S).fill(1);
  for (let r = 0; r < S; r++) mask.fill(0, r * S, r * S + (r < numTokens ? numTokens : r + 1));
  return mask;
}

/** A 1/0 mask as the additive attention bias: -inf where masked, 0 elsewhere. */
export function maskToBias(mask: ArrayLike<number>): Float32Array {
  return Float32Array.from(mask, (m) => (m ? -Infinity : 0));
}

/**
 * Which text positions get a loss: position j predicts id j+1, and counts while j+1 is a caption token or
 * the <|eos|>. Rows whose `dropped` flag is set (CFG-dropped captions) get none. [N, T] of 0 / 1.
 */
export function textLossMask(text: ArrayLike<number>, textLength: number, dropped?: ArrayLike<boolean | number>): Float32Array {
  const N = text.length / textLength;
  const mask = new Float32Array(text.length);
  for (let n = 0; n < N; n++) {
    if (dropped && dropped[n]) continue;
    for (let j = 0; j + 1 < textLength; j++) {
      const next = text[n * textLength + j + 1];
      if (next === PAD_ID || next === BOS_ID) break;
      mask[n * textLength + j] = 1;
      if (next === EOS_ID) break;
    }
  }
  return mask;
}

/** Next-token targets of caption rows: row shifted left by one (the last position's target is a pad). */
export function textTargets(text: ArrayLike<number>, textLength: number): Int32Array {
  const out = new Int32Array(text.length);
  for (let i = 0; i < text.length; i++) out[i] = (i + 1) % textLength === 0 ? PAD_ID : text[i + 1];
  return out;
}
