/**
 * One decoder-only CausalFusion transformer over text and image tokens (the paper's multimodal model,
 * Table 6a), built on the transformer body of @causalfusion/transformer (its parameters and state dict,
 * pre-LN blocks, timestep embedder, eps head, KV cache): this file adds the text tables, the image position
 * table and the LM head.
 *
 *   text tokens   = text_embed[id] + text_pos[j]                 (causal among themselves)
 *   clean image   = x_proj(x) + image_pos[q]                      (no timestep)
 *   noised image  = x_proj(xn) + image_pos[q] + t_embedder(t)    (the timestep only here)
 *
 * Two orders of one sequence:
 *   text-to-image  [text | clean tokens of AR steps 1..S-1 | noised tokens of all steps]: the generalized
 *                  causal mask of CausalFusion with the caption as the cond tokens, text causal;
 *   captioning     [image (clean, all tokens) | text]: the image attends to itself, text to the image and
 *                  causally to earlier text.
 * Heads: eps = final_layer(noised image tokens); logits = lm_head(text tokens) predict the next text id.
 * The LM head is NOT tied to text_embed: the vocabulary is tiny, so tying saves little, and an untied head
 * keeps the embedding free to serve both as the t2i condition and as the captioning input.
 */
import { tf } from '@causalfusion/backend';
import {
  checkTextIds,
  MULTIMODAL_KEYS as K,
  multimodalGeometry,
  multimodalParamEntries,
  validateMultimodalConfig,
  captionMask,
  maskToBias,
  type MultimodalConfig,
  type TextToImageTokens,
} from '@causalfusion/config';
import { applyHead, embeddingRows, KVCache, TransformerBody, type HeadParams } from '@causalfusion/transformer';

type Tensor = tf.Tensor;

/** The parameters outside the body: the text tables, the image position table and the LM head. */
export interface MultimodalParams {
  /** [V, D] */
  textEmbed: tf.Variable;
  /** [textLength, D] */
  textPos: tf.Variable;
  /** [L, D], initialised to the 2-D sin-cos embedding of the token grid. */
  imagePos: tf.Variable;
  lmHead: HeadParams;
}

/** Captioning inputs of a group of M samples. */
export interface CaptionInputs {
  /** [M, L, tokenDim] clean image tokens, raster order. */
  image: ArrayLike<number>;
  /** [M, textLength] caption rows. */
  text: ArrayLike<number>;
}

export class MultimodalModel extends TransformerBody {
  readonly config: MultimodalConfig;
  /** The image token grid: gridH rows of gridW tokens (L = gridH * gridW). */
  readonly gridH: number;
  readonly gridW: number;
  readonly params: MultimodalParams;
  protected readonly positionTable: tf.Variable;

  constructor(config: MultimodalConfig, options: { seed?: number | string } = {}) {
    validateMultimodalConfig(config);
    const g = multimodalGeometry(config);
    super(multimodalParamEntries(config), options.seed ?? 0, { ...config, ...g });
    this.config = { ...config };
    this.gridH = g.gridH;
    this.gridW = g.gridW;
    this.params = {
      textEmbed: this.store.variable(K.textEmbed),
      textPos: this.store.variable(K.textPos),
      imagePos: this.store.variable(K.imagePos),
      lmHead: this.store.head(K.lmNorm, K.lmLinear),
    };
    this.positionTable = this.params.imagePos;
  }

  // ---------------------------------------------------------------- embeddings and heads

  /** text_embed[ids] + text_pos[start..start+n): [R, n, D]. */
  private embedText(ids: Int32Array, R: number, n: number, start: number, differentiable: boolean): Tensor {
    const D = this.config.hiddenSize;
    const e = tf.reshape(embeddingRows(this.params.textEmbed, ids, differentiable), [R, n, D]);
    return tf.add(e, tf.slice(this.params.textPos, [start, 0], [n, D]));
  }

  private lmHead(h: Tensor): Tensor {
    return applyHead(h, this.params.lmHead);
  }

  // ---------------------------------------------------------------- training forward (both orders)

  /**
   * Text-to-image: [text | clean Lc | noised L] laid out by `prepareTextToImageTokens` (@causalfusion/config),
   * under its mask. Returns next-token logits at the text positions [N, textLength, V] and eps of the noised
   * tokens [N, L, d] in SHUFFLED order (position j is raster token ids[j]), as the official forward. Not
   * tidied (runs in variableGrads).
   */
  forwardTextToImage(tokens: TextToImageTokens): { logits: Tensor; eps: Tensor } {
    const c = this.config;
    const { N, Lc } = tokens;
    const L = this.numTokens;
    const Lt = c.textLength;
    const D = c.hiddenSize;
    const parts: Tensor[] = [this.embedText(tokens.text, N, Lt, 0, true)];
    if (Lc > 0) parts.push(this.embedImageTokens(tokens.cleanShuf, tokens.cleanPositions, N, Lc, true));
    parts.push(this.embedImageTokens(tokens.noisedShuf, tokens.ids, N, L, true, this.timestepEmbed(tokens.t)));
    const h = this.runBlocks(tf.concat(parts, 1), tokens.maskBias);
    const logits = tf.reshape(this.lmHead(tf.reshape(tf.slice(h, [0, 0, 0], [N, Lt, D]), [N * Lt, D])), [N, Lt, c.vocabSize]);
    const eps = tf.reshape(this.epsHead(this.noisedHidden(h)), [N, L, this.tokenDim]);
    return { logits, eps };
  }

  /** Captioning: [image | text] under {@link captionMask}; next-token logits at the text positions [M, textLength, V]. */
  forwardCaption(inputs: CaptionInputs): Tensor {
    const c = this.config;
    const L = this.numTokens;
    const Lt = c.textLength;
    const D = c.hiddenSize;
    const M = inputs.text.length / Lt;
    if (!Number.isInteger(M) || M === 0) throw new Error(`text has ${inputs.text.length} ids: not whole rows of ${Lt}`);
    const text = checkTextIds('text', inputs.text, M * Lt, c.vocabSize);
    if (inputs.image.length !== M * L * this.tokenDim) {
      throw new Error(`image has ${inputs.image.length} values, expected ${M * L * this.tokenDim} ([M=${M}, L=${L}, tokenDim=${this.tokenDim}])`);
    }
    const positions = Int32Array.from({ length: M * L }, (_, i) => i % L);
    const seq = tf.concat([this.embedImageTokens(inputs.image, positions, M, L, true), this.embedText(text, M, Lt, 0, true)], 1);
    const h = this.runBlocks(seq, maskToBias(captionMask(L, Lt)));
    return tf.reshape(this.lmHead(tf.reshape(tf.slice(h, [0, L, 0], [M, Lt, D]), [M * Lt, D])), [M, Lt, c.vocabSize]);
  }

  // ---------------------------------------------------------------- inference with a KV cache

  /** An empty cache for `rows` sequences. */
  createCache(rows: number): KVCache {
    if (!Number.isInteger(rows) || rows < 1) throw new Error(`createCache: rows must be a positive integer, got ${rows}`);
    return new KVCache(rows, this.config.numHeads, []);
  }

  /**
   * Push text ids [rows, n] at text positions start..start+n-1 (causal among themselves) into the cache.
   * With `logits`, returns the next-token logits of each pushed position [rows, n, V].
   */
  pushText(cache: KVCache, ids: ArrayLike<number>, start: number, n: number, options: { logits?: boolean } = {}): Float32Array | null {
    const Lt = this.config.textLength;
    if (!Number.isInteger(start) || start < 0 || start + n > Lt) throw new RangeError(`text positions ${start}..${start + n - 1} are outside 0..${Lt - 1}`);
    const checked = checkTextIds('text', ids, cache.rows * n, this.config.vocabSize);
    const emb = tf.tidy(() => this.embedText(checked, cache.rows, n, start, false));
    // the new tokens see everything cached and the earlier new tokens
    const cached = cache.length;
    let mask: Float32Array | null = null;
    if (n > 1) {
      const m = new Uint8Array(n * (cached + n));
      for (let r = 0; r < n; r++) m.fill(1, r * (cached + n) + cached + r + 1, (r + 1) * (cached + n));
      mask = maskToBias(m);
    }
    const h = this.runCached(cache, emb, mask, true);
    emb.dispose();
    try {
      return options.logits ? Float32Array.from(tf.tidy(() => this.lmHead(h)).dataSync() as Float32Array) : null;
    } finally {
      h.dispose();
    }
  }
}
