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
import { checkSplitSizes, getAttnMask } from '@causalfusion/sampler';
import { embeddingRows, KVCache, layerNorm, linear, timestepSinusoid, transformerBlock } from '@causalfusion/transformer';
import type { BlockParams, LayerNormParams, LinearParams } from '@causalfusion/transformer';
import { multimodalGeometry, MultimodalConfig, validateMultimodalConfig } from './config';

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

function maskBias(mask: Uint8Array, rows: number, cols: number): Tensor {
  const bias = new Float32Array(mask.length);
  for (let i = 0; i < mask.length; i++) bias[i] = mask[i] ? -Infinity : 0;
  return tf.tensor3d(bias, [rows, 1, cols]); // broadcast over the (sample, head) axis of the scores
}

function xavierUniform(rng: Rng, fanIn: number, fanOut: number): Float32Array {
  const bound = Math.sqrt(6 / (fanIn + fanOut));
  const out = new Float32Array(fanIn * fanOut);
  for (let i = 0; i < out.length; i++) out[i] = rng.uniform(-bound, bound);
  return out;
}

function normalArray(rng: Rng, n: number, std: number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = std * rng.normal();
  return out;
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
    const rng = createRng(options.seed ?? 0);
    const D = config.hiddenSize;
    const v = (data: Float32Array, shape: number[]) => {
      const init = tf.tensor(data, shape);
      const variable = tf.variable(init, true);
      init.dispose();
      return variable;
    };
    const lin = (fanIn: number, fanOut: number, bias = true, zero = false): LinearParams => ({
      weight: v(zero ? new Float32Array(fanIn * fanOut) : xavierUniform(rng, fanIn, fanOut), [fanIn, fanOut]),
      bias: bias ? v(new Float32Array(fanOut), [fanOut]) : null,
    });
    const ln = (n: number): LayerNormParams => ({ weight: v(new Float32Array(n).fill(1), [n]), bias: v(new Float32Array(n), [n]) });
    this.params = {
      textEmbed: v(normalArray(rng, config.vocabSize * D, 0.02), [config.vocabSize, D]),
      textPos: v(normalArray(rng, config.textLength * D, 0.02), [config.textLength, D]),
      imagePos: v(sincos2d(D, g.gridH, g.gridW), [g.numTokens, D]),
      xProj: lin(g.tokenDim, D),
      tMlp0: lin(256, D),
      tMlp2: lin(D, D),
      blocks: Array.from({ length: config.depth }, () => ({
        norm1: ln(D),
        qkv: lin(D, 3 * D, false),
        qNorm: ln(g.headDim),
        kNorm: ln(g.headDim),
        proj: lin(D, D),
        norm2: ln(D),
        fc1: lin(D, g.mlpHidden),
        fc2: lin(g.mlpHidden, D),
      })),
      finalNorm: ln(D),
      // as the official init: the eps head starts at zero
      finalLinear: lin(D, g.tokenDim, true, true),
      lmNorm: ln(D),
      lmHead: lin(D, config.vocabSize),
    };
  }

  // ---------------------------------------------------------------- parameters

  stateEntries(): MultimodalStateEntry[] {
    const p = this.params;
    const out: MultimodalStateEntry[] = [];
    const add = (key: string, variable: tf.Variable, transposed = false) => out.push({ key, variable, transposed });
    const addLinear = (prefix: string, l: LinearParams) => {
      add(`${prefix}.weight`, l.weight, true);
      if (l.bias) add(`${prefix}.bias`, l.bias);
    };
    const addNorm = (prefix: string, n: LayerNormParams) => {
      add(`${prefix}.weight`, n.weight);
      add(`${prefix}.bias`, n.bias);
    };
    add('text_embed.weight', p.textEmbed);
    add('text_pos_embed', p.textPos);
    add('image_pos_embed', p.imagePos);
    addLinear('x_proj', p.xProj);
    addLinear('t_embedder.mlp.0', p.tMlp0);
    addLinear('t_embedder.mlp.2', p.tMlp2);
    p.blocks.forEach((b, i) => {
      addNorm(`blocks.${i}.norm1`, b.norm1);
      addLinear(`blocks.${i}.attn.qkv`, b.qkv);
      addLinear(`blocks.${i}.attn.proj`, b.proj);
      addNorm(`blocks.${i}.attn.q_norm`, b.qNorm);
      addNorm(`blocks.${i}.attn.k_norm`, b.kNorm);
      addNorm(`blocks.${i}.norm2`, b.norm2);
      addLinear(`blocks.${i}.mlp.fc1`, b.fc1);
      addLinear(`blocks.${i}.mlp.fc2`, b.fc2);
    });
    addNorm('final_layer.0', p.finalNorm);
    addLinear('final_layer.1', p.finalLinear);
    addNorm('lm_head.0', p.lmNorm);
    addLinear('lm_head.1', p.lmHead);
    return out;
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
