/**
 * One decoder-only CausalFusion transformer over text and image tokens (the paper's multimodal model,
 * Table 6a), built from the official layers of @causalfusion/transformer (pre-LN blocks, per-head q/k
 * LayerNorm, tanh-GELU MLP, the wasm-friendly ops):
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
import { createRng, type Rng } from '@causalfusion/rng';
import { checkSplitSizes } from '@causalfusion/sampler';
import { blockParams, embeddingRows, KVCache, layerNorm, linear, timestepSinusoid, transformerBlock } from '@causalfusion/transformer';
import type { BlockParams, LayerNormParams, LinearParams } from '@causalfusion/transformer';
import { normalArray, xavierUniform } from '@causalfusion/transformer/init';
import {
  captionMask, maskToBias, multimodalGeometry, multimodalParamEntries, textToImageMask, validateMultimodalConfig,
  type MultimodalConfig, type MultimodalParamEntry,
} from './layout';

type Tensor = tf.Tensor;

export interface MultimodalParams {
  /** [V, D] */
  textEmbed: tf.Variable;
  /** [T, D] */
  textPos: tf.Variable;
  /** [L, D], initialised to the 2-D sin-cos embedding of the token grid. */
  imagePos: tf.Variable;
  xProj: LinearParams;
  tMlp0: LinearParams;
  tMlp2: LinearParams;
  blocks: BlockParams[];
  finalNorm: LayerNormParams;
  finalLinear: LinearParams;
  lmNorm: LayerNormParams;
  lmHead: LinearParams;
}

/** A weight: its key in model.safetensors, and whether it is an nn.Linear weight (stored [out, in] there). */
export interface MultimodalStateEntry {
  key: string;
  variable: tf.Variable;
  transposed: boolean;
}

/** Text-to-image inputs of a group of N samples. Image tokens are [N, L, tokenDim] in raster order. */
export interface TextToImageInputs {
  /** [N, T] caption rows (bos, caption, eos, pads); a dropped caption is the null caption. */
  text: ArrayLike<number>;
  /** Clean tokens x0. */
  x: ArrayLike<number>;
  /** Noised tokens x_t. */
  xn: ArrayLike<number>;
  /** [N] original timesteps. */
  t: ArrayLike<number>;
  /** AR step sizes, shared by the group. */
  splitSizes: ArrayLike<number>;
  /** [N, L]: shuffled position j of sample n holds raster token idsShuffle[n*L + j] (default: raster). */
  idsShuffle?: ArrayLike<number>;
}

/** Captioning inputs of a group of M samples. */
export interface CaptionInputs {
  /** [M, L, tokenDim] clean image tokens, raster order. */
  image: ArrayLike<number>;
  /** [M, T] caption rows. */
  text: ArrayLike<number>;
}

/** 2-D sin-cos positions of a gh x gw grid (the official layout: first half encodes the column, second the row). */
export function sincos2d(embedDim: number, gh: number, gw: number): Float32Array {
  const quarter = embedDim / 4;
  const out = new Float32Array(gh * gw * embedDim);
  for (let h = 0; h < gh; h++)
    for (let w = 0; w < gw; w++) {
      const row = (h * gw + w) * embedDim;
      [w, h].forEach((coord, half) => {
        for (let i = 0; i < quarter; i++) {
          const arg = coord / 10000 ** (i / quarter);
          out[row + half * 2 * quarter + i] = Math.sin(arg);
          out[row + half * 2 * quarter + quarter + i] = Math.cos(arg);
        }
      });
    }
  return out;
}

function maskBias(mask: Uint8Array, rows: number, cols: number): Tensor {
  return tf.tensor3d(maskToBias(mask), [rows, 1, cols]); // broadcast over the (sample, head) axis of the scores
}

/**
 * The initial value of a parameter (the official init rules): N(0, 0.02) text tables, the 2-D sin-cos
 * grid for image_pos_embed, xavier-uniform Linear weights except the eps head's (zero), LayerNorm weights
 * 1, biases 0. Drawn from `rng` in {@link multimodalParamEntries} order.
 */
function initialValue(e: MultimodalParamEntry, rng: Rng, g: ReturnType<typeof multimodalGeometry>, hiddenSize: number): Float32Array {
  const size = e.shape.reduce((a, b) => a * b, 1);
  if (e.key === 'text_embed.weight' || e.key === 'text_pos_embed') return normalArray(rng, size, 0.02);
  if (e.key === 'image_pos_embed') return sincos2d(hiddenSize, g.gridH, g.gridW);
  // as the official init: the eps head starts at zero
  if (e.transposed) return e.key === 'final_layer.1.weight' ? new Float32Array(size) : xavierUniform(rng, e.shape[0], e.shape[1]);
  return new Float32Array(size).fill(e.key.endsWith('.weight') ? 1 : 0);
}

function silu(x: Tensor): Tensor {
  return tf.mul(x, tf.sigmoid(x));
}

function checkIds(name: string, ids: ArrayLike<number>, expected: number, vocab: number): Int32Array {
  if (ids.length !== expected) throw new Error(`${name} has ${ids.length} ids, expected ${expected}`);
  const out = new Int32Array(expected);
  for (let i = 0; i < expected; i++) {
    const v = ids[i];
    if (!Number.isInteger(v) || v < 0 || v >= vocab) throw new RangeError(`${name}: token id ${v} at ${i} is outside the vocabulary 0..${vocab - 1}`);
    out[i] = v;
  }
  return out;
}

export class MultimodalModel {
  readonly config: MultimodalConfig;
  /** L: image tokens. */
  readonly numTokens: number;
  readonly tokenDim: number;
  readonly gridH: number;
  readonly gridW: number;
  readonly headDim: number;
  readonly params: MultimodalParams;
  /** The parameters' keys, training-layout shapes and storage (./layout), in state-dict order. */
  private readonly entries: MultimodalParamEntry[];
  private readonly variables = new Map<string, tf.Variable>();
  private disposed = false;

  constructor(config: MultimodalConfig, options: { seed?: number | string } = {}) {
    validateMultimodalConfig(config);
    this.config = { ...config };
    const g = multimodalGeometry(config);
    this.numTokens = g.numTokens;
    this.tokenDim = g.tokenDim;
    this.gridH = g.gridH;
    this.gridW = g.gridW;
    this.headDim = g.headDim;
    this.entries = multimodalParamEntries(config);
    const rng = createRng(options.seed ?? 0);
    for (const e of this.entries) {
      // tf.variable keeps its own copy: free the initial tensor so dispose() frees all
      const init = tf.tensor(initialValue(e, rng, g, config.hiddenSize), e.shape);
      this.variables.set(e.key, tf.variable(init, e.trainable));
      init.dispose();
    }
    const v = (key: string) => this.variables.get(key)!;
    const lin = (prefix: string): LinearParams => ({ weight: v(`${prefix}.weight`), bias: this.variables.get(`${prefix}.bias`) ?? null });
    const ln = (prefix: string): LayerNormParams => ({ weight: v(`${prefix}.weight`), bias: v(`${prefix}.bias`) });
    this.params = {
      textEmbed: v('text_embed.weight'),
      textPos: v('text_pos_embed'),
      imagePos: v('image_pos_embed'),
      xProj: lin('x_proj'),
      tMlp0: lin('t_embedder.mlp.0'),
      tMlp2: lin('t_embedder.mlp.2'),
      blocks: Array.from({ length: config.depth }, (_, i) => blockParams(v, `blocks.${i}`)),
      finalNorm: ln('final_layer.0'),
      finalLinear: lin('final_layer.1'),
      lmNorm: ln('lm_head.0'),
      lmHead: lin('lm_head.1'),
    };
  }

  // ---------------------------------------------------------------- parameters

  /** Every weight in {@link multimodalParamEntries} order (./layout: the checkpoint's and the optimizer's order). */
  stateEntries(): MultimodalStateEntry[] {
    return this.entries.map((e) => ({ key: e.key, variable: this.variables.get(e.key)!, transposed: e.transposed }));
  }

  trainableVariables(): tf.Variable[] {
    return this.stateEntries().map((e) => e.variable);
  }

  numParams(): number {
    return this.stateEntries().reduce((a, e) => a + e.variable.size, 0);
  }

  /** key -> {shape, data}, nn.Linear weights as [out, in]. */
  stateDict(): Map<string, { shape: number[]; data: Float32Array }> {
    const out = new Map<string, { shape: number[]; data: Float32Array }>();
    for (const e of this.stateEntries()) {
      const t = tf.tidy(() => (e.transposed ? tf.transpose(e.variable) : e.variable.clone()));
      out.set(e.key, { shape: [...t.shape], data: Float32Array.from(t.dataSync() as Float32Array) });
      t.dispose();
    }
    return out;
  }

  /** Load a state dict; every key must be there with its shape (the Error lists what is wrong). */
  loadStateDict(state: Map<string, { shape: number[]; data: Float32Array }>, where = 'checkpoint'): void {
    const entries = this.stateEntries();
    const problems: string[] = [];
    const known = new Set(entries.map((e) => e.key));
    for (const e of entries) {
      const t = state.get(e.key);
      const shape = e.transposed ? [...e.variable.shape].reverse() : [...e.variable.shape];
      if (!t) problems.push(`missing ${e.key}`);
      else if (t.shape.join(',') !== shape.join(',')) problems.push(`${e.key}: checkpoint [${t.shape}], model [${shape}]`);
    }
    for (const k of state.keys()) if (!known.has(k)) problems.push(`unexpected ${k}`);
    if (problems.length) throw new Error(`${where} does not match the multimodal config: ${problems.join('; ')}`);
    for (const e of entries) {
      const t = state.get(e.key)!;
      tf.tidy(() => {
        const x = tf.tensor(t.data, t.shape);
        e.variable.assign(e.transposed ? tf.transpose(x) : x);
      });
    }
  }

  dispose(): void {
    if (this.disposed) return;
    for (const e of this.stateEntries()) e.variable.dispose();
    this.disposed = true;
  }

  // ---------------------------------------------------------------- building blocks

  timestepEmbed(t: ArrayLike<number>): Tensor {
    const freq = tf.tensor2d(timestepSinusoid(t, 256), [t.length, 256]);
    const { tMlp0, tMlp2 } = this.params;
    return linear(silu(linear(freq, tMlp0.weight, tMlp0.bias)), tMlp2.weight, tMlp2.bias);
  }

  private rowsOf(table: tf.Variable, ids: Int32Array, differentiable: boolean): Tensor {
    return embeddingRows(table, ids, differentiable);
  }

  /** text_embed[ids] + text_pos[start..start+n): [R, n, D]. */
  private embedText(ids: Int32Array, R: number, n: number, start: number, differentiable: boolean): Tensor {
    const D = this.config.hiddenSize;
    const e = tf.reshape(this.rowsOf(this.params.textEmbed, ids, differentiable), [R, n, D]);
    return tf.add(e, tf.slice(this.params.textPos, [start, 0], [n, D]));
  }

  /** x_proj(tokens) + image_pos[positions] (+ t_embedder(t) when t is given): [R, n, D]. */
  private embedImage(tokens: ArrayLike<number>, positions: Int32Array, R: number, n: number, differentiable: boolean, t?: Tensor): Tensor {
    const p = this.params;
    const D = this.config.hiddenSize;
    const e = linear(tf.tensor2d(Float32Array.from(tokens), [R * n, this.tokenDim]), p.xProj.weight, p.xProj.bias);
    let x = tf.reshape(tf.add(e, this.rowsOf(p.imagePos, positions, differentiable)), [R, n, D]);
    if (t) x = tf.add(x, tf.reshape(t, [t.shape[0], 1, D]));
    return x;
  }

  /** One block of @causalfusion/transformer (the same layers, shared code). */
  private block(x: Tensor, b: BlockParams, N: number, S: number, bias: Tensor | null, past: { k: Tensor; v: Tensor } | null) {
    return transformerBlock(x, b, { N, S, hiddenSize: this.config.hiddenSize, numHeads: this.config.numHeads }, bias, past);
  }

  private epsHead(h: Tensor): Tensor {
    const { finalNorm, finalLinear } = this.params;
    return linear(layerNorm(h, finalNorm.weight, finalNorm.bias), finalLinear.weight, finalLinear.bias);
  }

  private lmHead(h: Tensor): Tensor {
    const { lmNorm, lmHead } = this.params;
    return linear(layerNorm(h, lmNorm.weight, lmNorm.bias), lmHead.weight, lmHead.bias);
  }

  private runBlocks(seq: Tensor, N: number, S: number, mask: Uint8Array): Tensor {
    const bias = maskBias(mask, S, S);
    let x: Tensor = tf.reshape(seq, [N * S, this.config.hiddenSize]);
    for (const b of this.params.blocks) x = this.block(x, b, N, S, bias, null).x;
    return tf.reshape(x, [N, S, this.config.hiddenSize]);
  }

  // ---------------------------------------------------------------- training forward (both orders)

  /**
   * Text-to-image: [text | clean Lc | noised L] under {@link textToImageMask}. Returns next-token logits
   * at the text positions [N, T, V] and eps of the noised tokens [N, L, tokenDim] in SHUFFLED order
   * (position j is raster token idsShuffle[j]), as the official forward. Not tidied (runs in variableGrads).
   */
  forwardTextToImage(inputs: TextToImageInputs): { logits: Tensor; eps: Tensor; idsShuffle: Int32Array } {
    const c = this.config;
    const N = inputs.t.length;
    const L = this.numTokens;
    const d = this.tokenDim;
    const T = c.textLength;
    const D = c.hiddenSize;
    if (N === 0) throw new Error('forwardTextToImage: the group is empty');
    const text = checkIds('text', inputs.text, N * T, c.vocabSize);
    for (const [name, a] of [['x', inputs.x], ['xn', inputs.xn]] as const) {
      if (a.length !== N * L * d) throw new Error(`${name} has ${a.length} values, expected ${N * L * d} ([N=${N}, L=${L}, tokenDim=${d}])`);
    }
    const splitSizes = Array.from(inputs.splitSizes);
    checkSplitSizes(splitSizes, L);
    const Lc = L - splitSizes[splitSizes.length - 1];
    const ids = new Int32Array(N * L);
    if (inputs.idsShuffle) {
      if (inputs.idsShuffle.length !== N * L) throw new Error(`idsShuffle has ${inputs.idsShuffle.length} entries, expected ${N * L}`);
      ids.set(Array.from(inputs.idsShuffle));
    } else for (let i = 0; i < N * L; i++) ids[i] = i % L;
    const cleanShuf = new Float32Array(N * Lc * d);
    const xnShuf = new Float32Array(N * L * d);
    const cleanPos = new Int32Array(N * Lc);
    for (let n = 0; n < N; n++)
      for (let j = 0; j < L; j++) {
        const src = (n * L + ids[n * L + j]) * d;
        for (let k = 0; k < d; k++) xnShuf[(n * L + j) * d + k] = inputs.xn[src + k];
        if (j < Lc) {
          for (let k = 0; k < d; k++) cleanShuf[(n * Lc + j) * d + k] = inputs.x[src + k];
          cleanPos[n * Lc + j] = ids[n * L + j];
        }
      }
    const parts: Tensor[] = [this.embedText(text, N, T, 0, true)];
    if (Lc > 0) parts.push(this.embedImage(cleanShuf, cleanPos, N, Lc, true));
    parts.push(this.embedImage(xnShuf, ids, N, L, true, this.timestepEmbed(inputs.t)));
    const S = T + Lc + L;
    const h = this.runBlocks(tf.concat(parts, 1), N, S, textToImageMask(T, L, splitSizes));
    const logits = tf.reshape(this.lmHead(tf.reshape(tf.slice(h, [0, 0, 0], [N, T, D]), [N * T, D])), [N, T, c.vocabSize]);
    const eps = tf.reshape(this.epsHead(tf.reshape(tf.slice(h, [0, S - L, 0], [N, L, D]), [N * L, D])), [N, L, d]);
    return { logits, eps, idsShuffle: ids };
  }

  /** Captioning: [image | text] under {@link captionMask}; next-token logits at the text positions [M, T, V]. */
  forwardCaption(inputs: CaptionInputs): Tensor {
    const c = this.config;
    const L = this.numTokens;
    const T = c.textLength;
    const D = c.hiddenSize;
    const M = inputs.text.length / T;
    if (!Number.isInteger(M) || M === 0) throw new Error(`text has ${inputs.text.length} ids: not whole rows of ${T}`);
    const text = checkIds('text', inputs.text, M * T, c.vocabSize);
    if (inputs.image.length !== M * L * this.tokenDim) {
      throw new Error(`image has ${inputs.image.length} values, expected ${M * L * this.tokenDim} ([M=${M}, L=${L}, tokenDim=${this.tokenDim}])`);
    }
    const positions = Int32Array.from({ length: M * L }, (_, i) => i % L);
    const seq = tf.concat([this.embedImage(inputs.image, positions, M, L, true), this.embedText(text, M, T, 0, true)], 1);
    const h = this.runBlocks(seq, M, L + T, captionMask(L, T));
    return tf.reshape(this.lmHead(tf.reshape(tf.slice(h, [0, L, 0], [M, T, D]), [M * T, D])), [M, T, c.vocabSize]);
  }

  // ---------------------------------------------------------------- inference with a KV cache

  /** An empty cache for `rows` sequences. */
  createCache(rows: number): KVCache {
    if (!Number.isInteger(rows) || rows < 1) throw new Error(`createCache: rows must be a positive integer, got ${rows}`);
    return new KVCache(rows, this.config.numHeads, []);
  }

  /**
   * Run embedded tokens [R, n, D] through the blocks against the cache. With `causal`, the new tokens
   * see only earlier new tokens (text); without, each other (an image or an AR step of clean tokens).
   * `commit` appends their keys/values to the cache; returns the final hidden states [R*n, D] (kept).
   */
  private run(cache: KVCache, emb: Tensor, causal: boolean, commit: boolean): Tensor {
    const [R, n, D] = emb.shape;
    if (R !== cache.rows) throw new Error(`${R} rows but the cache holds ${cache.rows}`);
    const past = cache.length;
    const result = tf.tidy(() => {
      let bias: Tensor | null = null;
      if (causal && n > 1) {
        const m = new Uint8Array(n * (past + n));
        for (let r = 0; r < n; r++) m.fill(1, r * (past + n) + past + r + 1, (r + 1) * (past + n));
        bias = maskBias(m, n, past + n);
      }
      let x: Tensor = tf.reshape(emb, [R * n, D]);
      const layers: { k: tf.Tensor3D; v: tf.Tensor3D }[] = [];
      this.params.blocks.forEach((b, i) => {
        const r = this.block(x, b, R, n, bias, past ? cache.layers[i] : null);
        x = r.x;
        layers.push({ k: r.k as tf.Tensor3D, v: r.v as tf.Tensor3D });
      });
      return { x, layers: commit ? layers : [] };
    });
    if (commit) {
      const old = cache.layers;
      cache.layers = result.layers;
      for (const l of old) {
        l.k.dispose();
        l.v.dispose();
      }
    }
    return result.x;
  }

  /**
   * Push text ids [rows, n] at text positions start..start+n-1 (causal among themselves) into the cache.
   * With `logits`, returns the next-token logits of each pushed position [rows, n, V].
   */
  pushText(cache: KVCache, ids: ArrayLike<number>, start: number, n: number, options: { logits?: boolean } = {}): Float32Array | null {
    const T = this.config.textLength;
    if (!Number.isInteger(start) || start < 0 || start + n > T) throw new RangeError(`text positions ${start}..${start + n - 1} are outside 0..${T - 1}`);
    const checked = checkIds('text', ids, cache.rows * n, this.config.vocabSize);
    const emb = tf.tidy(() => this.embedText(checked, cache.rows, n, start, false));
    const h = this.run(cache, emb, true, true);
    emb.dispose();
    try {
      return options.logits ? Float32Array.from(tf.tidy(() => this.lmHead(h)).dataSync() as Float32Array) : null;
    } finally {
      h.dispose();
    }
  }

  private checkPositions(positions: ArrayLike<number>, count: number): Int32Array {
    if (positions.length !== count) throw new Error(`positions has ${positions.length} entries, expected ${count}`);
    const out = new Int32Array(count);
    for (let i = 0; i < count; i++) {
      const q = positions[i];
      if (!Number.isInteger(q) || q < 0 || q >= this.numTokens) throw new RangeError(`position ${q} is not an image token (0..${this.numTokens - 1})`);
      out[i] = q;
    }
    return out;
  }

  /** Push clean image tokens [rows, n, tokenDim] at raster `positions` [rows, n] (no timestep). */
  pushImage(cache: KVCache, tokens: ArrayLike<number>, positions: ArrayLike<number>, n: number): void {
    const R = cache.rows;
    if (tokens.length !== R * n * this.tokenDim) throw new Error(`tokens have ${tokens.length} values, expected ${R * n * this.tokenDim}`);
    const pos = this.checkPositions(positions, R * n);
    const emb = tf.tidy(() => this.embedImage(tokens, pos, R, n, false));
    this.run(cache, emb, false, true).dispose();
    emb.dispose();
  }

  /** eps of noised tokens [rows, n, tokenDim] at `positions` and ORIGINAL timestep t; the cache is unchanged. */
  predictEps(cache: KVCache, noised: ArrayLike<number>, positions: ArrayLike<number>, n: number, timestep: number): Float32Array {
    const R = cache.rows;
    if (!Number.isFinite(timestep) || timestep < 0) throw new RangeError(`timestep ${timestep} is invalid; use 0..999`);
    if (noised.length !== R * n * this.tokenDim) throw new Error(`noised has ${noised.length} values, expected ${R * n * this.tokenDim}`);
    const pos = this.checkPositions(positions, R * n);
    const emb = tf.tidy(() => this.embedImage(noised, pos, R, n, false, tf.tile(this.timestepEmbed([timestep]), [R, 1])));
    const h = this.run(cache, emb, false, false);
    emb.dispose();
    try {
      return Float32Array.from(tf.tidy(() => this.epsHead(h)).dataSync() as Float32Array);
    } finally {
      h.dispose();
    }
  }
}
