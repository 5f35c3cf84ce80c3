/**
 * The transformer body in tfjs, shared by every model built from it (`CausalDiffusionModel` here, the
 * multimodal model of @causalfusion/multimodal): the parameters of a table (`ParamEntry[]` of
 * @causalfusion/config) as tf.Variables with the state-dict load/save, the pre-LN block, the timestep
 * embedder, the final layer, the KV cache, and running the blocks over a whole sequence (training) or
 * against a cache (inference).
 *
 * Parameters are tf.Variables in the training layout: Linear weights [in, out] (transposed from PyTorch)
 * so that every product is a plain matMul; state dicts convert to and from the official [out, in].
 */
import { tf } from '@causalfusion/backend';
import {
  BODY_KEYS,
  blockKeys,
  checkLength,
  checkStateEntries,
  initialWeights,
  timestepSinusoid,
  TIMESTEP_FREQUENCIES,
  type ParamEntry,
  type StateDict,
} from '@causalfusion/config';
import { convBatchMatMul, geluTanh, layerNorm, linear, matMul, silu } from './ops';

type Tensor = tf.Tensor;

export interface LinearParams {
  /** [in, out] */
  weight: tf.Variable;
  bias: tf.Variable | null;
}
export interface LayerNormParams {
  weight: tf.Variable;
  bias: tf.Variable;
}
export interface BlockParams {
  norm1: LayerNormParams;
  qkv: LinearParams;
  qNorm: LayerNormParams;
  kNorm: LayerNormParams;
  proj: LinearParams;
  norm2: LayerNormParams;
  fc1: LinearParams;
  fc2: LinearParams;
}
/** A LayerNorm then a Linear: the eps head (final_layer) and the multimodal LM head. */
export interface HeadParams {
  norm: LayerNormParams;
  linear: LinearParams;
}
/** The layers every model has: x_proj, the timestep MLP, the blocks, the eps head. */
export interface BodyParams {
  xProj: LinearParams;
  timestep: { fc1: LinearParams; fc2: LinearParams };
  blocks: BlockParams[];
  finalLayer: HeadParams;
}

/** One checkpoint entry: a state-dict key and where it lives here. */
export interface StateEntry {
  key: string;
  variable: tf.Variable;
  /** The official shape. */
  shape: number[];
  /** true for nn.Linear weights: official [out, in], ours [in, out]. */
  transposed: boolean;
}

/** The tf.Variables of a parameter table (training layout), in its order. */
export class ParamStore {
  private readonly variables = new Map<string, tf.Variable>();

  /** `init`: the initial values in entries order (`initialWeights` of @causalfusion/config). */
  constructor(
    readonly entries: readonly ParamEntry[],
    init: readonly Float32Array[],
  ) {
    entries.forEach((e, i) => {
      // tf.variable keeps its own copy: free the initial tensor so dispose() frees all
      const t = tf.tensor(init[i], e.shape);
      this.variables.set(e.key, tf.variable(t, e.trainable));
      t.dispose();
    });
  }

  variable(key: string): tf.Variable {
    const v = this.variables.get(key);
    if (!v) throw new Error(`internal: no parameter ${key}`);
    return v;
  }

  linear(prefix: string): LinearParams {
    return { weight: this.variable(`${prefix}.weight`), bias: this.variables.get(`${prefix}.bias`) ?? null };
  }

  norm(prefix: string): LayerNormParams {
    return { weight: this.variable(`${prefix}.weight`), bias: this.variable(`${prefix}.bias`) };
  }

  head(normPrefix: string, linearPrefix: string): HeadParams {
    return { norm: this.norm(normPrefix), linear: this.linear(linearPrefix) };
  }

  /** Block i's layers, by the key table of @causalfusion/config. */
  block(i: number): BlockParams {
    const k = blockKeys(i);
    return {
      norm1: this.norm(k.norm1),
      qkv: this.linear(k.qkv),
      qNorm: this.norm(k.qNorm),
      kNorm: this.norm(k.kNorm),
      proj: this.linear(k.proj),
      norm2: this.norm(k.norm2),
      fc1: this.linear(k.fc1),
      fc2: this.linear(k.fc2),
    };
  }

  /** The layers of the body (`depth` blocks). */
  body(depth: number): BodyParams {
    return {
      xProj: this.linear(BODY_KEYS.xProj),
      timestep: { fc1: this.linear(BODY_KEYS.timestepFc1), fc2: this.linear(BODY_KEYS.timestepFc2) },
      blocks: Array.from({ length: depth }, (_, i) => this.block(i)),
      finalLayer: this.head(BODY_KEYS.finalNorm, BODY_KEYS.finalLinear),
    };
  }

  /** Every parameter in table order (the checkpoint's and the optimizer's order). */
  stateEntries(): StateEntry[] {
    return this.entries.map((e) => ({ key: e.key, variable: this.variable(e.key), shape: [...e.officialShape], transposed: e.transposed }));
  }

  /** The variables the optimizer updates. */
  trainableVariables(): tf.Variable[] {
    return this.entries.filter((e) => e.trainable).map((e) => this.variable(e.key));
  }

  numParams(): number {
    return this.entries.reduce((a, e) => a + this.variable(e.key).size, 0);
  }

  /** The state dict in the official layout ([out, in] Linear weights, official shapes). */
  stateDict(): StateDict {
    const out: StateDict = new Map();
    for (const e of this.stateEntries()) {
      const data = tf.tidy(() => (e.transposed ? tf.transpose(e.variable) : e.variable).dataSync() as Float32Array);
      out.set(e.key, { shape: e.shape, data: Float32Array.from(data) });
    }
    return out;
  }

  /** Assign a state dict already checked against the entries (official layout). */
  assign(state: ReadonlyMap<string, { shape: number[]; data: ArrayLike<number> }>): void {
    for (const e of this.stateEntries()) {
      const t = state.get(e.key)!;
      tf.tidy(() => {
        const official = tf.tensor(t.data instanceof Float32Array ? t.data : Float32Array.from(t.data), t.shape);
        e.variable.assign((e.transposed ? tf.transpose(official) : official).reshape(e.variable.shape));
      });
    }
  }

  dispose(): void {
    for (const v of this.variables.values()) v.dispose();
    this.variables.clear();
  }
}

/** Rows of `table` [rows, width] at `ids`. A one-hot product when the table trains (wasm has no gather gradient). */
export function embeddingRows(table: tf.Variable, ids: Int32Array, differentiable: boolean): Tensor {
  if (!differentiable) return tf.gather(table, tf.tensor1d(ids, 'int32'));
  // built on the CPU: tf.oneHot with a float32 dtype returns integer bits on tfjs-wasm 4.22
  const rows = table.shape[0];
  const oneHot = new Float32Array(ids.length * rows);
  for (let i = 0; i < ids.length; i++) oneHot[i * rows + ids[i]] = 1;
  return matMul(tf.tensor2d(oneHot, [ids.length, rows]), table);
}

/** t_embedder(t): the timestep sinusoid [N, 256], Linear, SiLU, Linear -> [N, D]. */
export function timestepEmbed(p: BodyParams['timestep'], t: ArrayLike<number>): Tensor {
  const freq = tf.tensor2d(timestepSinusoid(t, TIMESTEP_FREQUENCIES), [t.length, TIMESTEP_FREQUENCIES]);
  return linear(silu(linear(freq, p.fc1.weight, p.fc1.bias)), p.fc2.weight, p.fc2.bias);
}

/** A head on hidden states h [rows, D]: Linear(LayerNorm(h)). */
export function applyHead(h: Tensor, p: HeadParams): Tensor {
  return linear(layerNorm(h, p.norm.weight, p.norm.bias), p.linear.weight, p.linear.bias);
}

/** The sizes a block needs: N sequences of seqLen tokens, width D in H heads. */
export interface BlockDims {
  N: number;
  seqLen: number;
  hiddenSize: number;
  numHeads: number;
}

/**
 * Generalized causal attention on h [N*seqLen, D] (already norm1-ed). With `past`, the keys and values
 * of earlier tokens are prepended (KV cache); returns the output [N*seqLen, D] and the full keys/values.
 */
function attention(
  h: Tensor,
  b: BlockParams,
  dims: BlockDims,
  maskBias: Tensor | null,
  past: { k: Tensor; v: Tensor } | null,
): { out: Tensor; k: Tensor; v: Tensor } {
  const { N, seqLen: n, hiddenSize: D, numHeads: H } = dims;
  const hd = D / H;
  // qkv (no bias): output columns are (q|k|v) x heads x headDim. Three products with column slices
  // of the weight are cheaper on wasm than one product and a split of its output.
  const [q2, k2, v2] = [0, 1, 2].map((i) => matMul(h, tf.slice(b.qkv.weight, [0, i * D], [D, D])));
  // Per-head LayerNorm on rows of headDim, then each of q, k, v goes with ONE transpose into the
  // layout of convBatchMatMul, with the (sample, head) pairs B = N*H as its batch:
  //   q [n, hd, B] (scaled), k [hd, B, keys], v [keys, B, hd].
  const headRows = (t: Tensor, norm: LayerNormParams) => tf.reshape(layerNorm(tf.reshape(t, [N * n * H, hd]), norm.weight, norm.bias), [N, n, H, hd]);
  const q = tf.mul(tf.reshape(tf.transpose(headRows(q2, b.qNorm), [1, 3, 0, 2]), [n, hd, N * H]), 1 / Math.sqrt(hd));
  let k = tf.reshape(tf.transpose(headRows(k2, b.kNorm), [3, 0, 2, 1]), [hd, N * H, n]);
  let v = tf.reshape(tf.transpose(tf.reshape(v2, [N, n, H, hd]), [1, 0, 2, 3]), [n, N * H, hd]);
  if (past) {
    k = tf.concat([past.k, k], 2);
    v = tf.concat([past.v, v], 0);
  }
  let scores = convBatchMatMul(q, k); // [n, B, keys]
  if (maskBias) scores = tf.add(scores, maskBias); // mask [n, 1, keys]
  const attn = tf.softmax(scores);
  // out [n, B, hd] = [n, N, D] -> [N*n, D]
  const o = tf.reshape(tf.transpose(tf.reshape(convBatchMatMul(tf.transpose(attn, [0, 2, 1]), v), [n, N, D]), [1, 0, 2]), [N * n, D]);
  return { out: linear(o, b.proj.weight, b.proj.bias), k, v };
}

/**
 * One pre-LN block of the in-context DiT (QK-LayerNorm attention, tanh-GELU MLP, no adaLN) on x [N*seqLen, D],
 * with an optional additive mask [seqLen, 1, keys] and past keys/values. Returns x and the keys/values (past
 * included) for a KV cache.
 */
export function transformerBlock(
  x: Tensor,
  b: BlockParams,
  dims: BlockDims,
  maskBias: Tensor | null,
  past: { k: Tensor; v: Tensor } | null,
): { x: Tensor; k: Tensor; v: Tensor } {
  const a = attention(layerNorm(x, b.norm1.weight, b.norm1.bias), b, dims, maskBias, past);
  const h = tf.add(x, a.out);
  const m = linear(geluTanh(linear(layerNorm(h, b.norm2.weight, b.norm2.bias), b.fc1.weight, b.fc1.bias)), b.fc2.weight, b.fc2.bias);
  return { x: tf.add(h, m), k: a.k, v: a.v };
}

/** The per-layer key/value cache of a batch of `rows` sequences. */
export class KVCache {
  /**
   * Per layer, with the (row, head) pairs B = rows*H as one axis (the layouts attention multiplies in):
   * keys after k_norm as [headDim, B, tokens], values as [tokens, B, headDim].
   */
  layers: { k: tf.Tensor3D; v: tf.Tensor3D }[];
  constructor(
    readonly rows: number,
    readonly numHeads: number,
    layers: { k: tf.Tensor3D; v: tf.Tensor3D }[],
  ) {
    this.layers = layers;
  }

  /** Tokens held (cond tokens included). */
  get length(): number {
    return this.layers.length ? this.layers[0].v.shape[0] : 0;
  }

  /** An independent copy (to branch, e.g. several continuations of one prefix). */
  clone(): KVCache {
    return new KVCache(
      this.rows,
      this.numHeads,
      this.layers.map((l) => ({ k: tf.keep(l.k.clone()), v: tf.keep(l.v.clone()) })),
    );
  }

  /** The official layout, per layer k and v as [rows, heads, tokens, headDim] float32 (for inspection). */
  toOfficial(): { k: Float32Array; v: Float32Array; shape: number[] }[] {
    const R = this.rows;
    const H = this.numHeads;
    return this.layers.map(({ k, v }) => {
      const [hd, , n] = k.shape;
      return tf.tidy(() => ({
        k: Float32Array.from(tf.transpose(tf.reshape(k, [hd, R, H, n]), [1, 2, 3, 0]).dataSync() as Float32Array),
        v: Float32Array.from(tf.transpose(tf.reshape(v, [n, R, H, hd]), [1, 2, 0, 3]).dataSync() as Float32Array),
        shape: [R, H, n, hd],
      }));
    });
  }

  dispose(): void {
    for (const l of this.layers) {
      l.k.dispose();
      l.v.dispose();
    }
    this.layers = [];
  }
}

/**
 * The transformer body as a base class: its parameter store (state-dict load/save), the layers every model
 * has, and the two ways to run the blocks (a whole sequence under a mask; new tokens against a KV cache).
 */
export abstract class TransformerBody {
  /** D: the width, in `numHeads` heads of headDim. */
  readonly hiddenSize: number;
  readonly numHeads: number;
  readonly headDim: number;
  /** L: image tokens per sample, of d = tokenDim values. */
  readonly numTokens: number;
  readonly tokenDim: number;
  readonly body: BodyParams;
  protected readonly store: ParamStore;
  private disposed = false;

  /**
   * The variables of `entries` (a model's parameter table), initialised from `seed` by the official rules
   * (`initialWeights` of @causalfusion/config: the same values on every runtime).
   */
  protected constructor(
    entries: readonly ParamEntry[],
    seed: number | string,
    dims: { hiddenSize: number; numHeads: number; depth: number; numTokens: number; tokenDim: number },
  ) {
    this.hiddenSize = dims.hiddenSize;
    this.numHeads = dims.numHeads;
    this.headDim = dims.hiddenSize / dims.numHeads;
    this.numTokens = dims.numTokens;
    this.tokenDim = dims.tokenDim;
    this.store = new ParamStore(entries, initialWeights(entries, seed));
    this.body = this.store.body(dims.depth);
  }

  /**
   * Throws unless `state` is a state dict of this model: the Error lists what is missing, unexpected or
   * misshapen (`checkStateEntries` of @causalfusion/config).
   */
  protected checkState(state: ReadonlyMap<string, { shape: number[]; data: ArrayLike<number> }>, where: string): void {
    checkStateEntries(this.store.entries, state, where, 'the model config', '  Fix: use the config.json the weights were trained with.');
  }

  /** Every weight in state-dict order (the checkpoint's and the optimizer's order), mapped to its variable. */
  stateEntries(): StateEntry[] {
    return this.store.stateEntries();
  }

  /** The variables the optimizer updates. */
  trainableVariables(): tf.Variable[] {
    return this.store.trainableVariables();
  }

  numParams(): number {
    return this.store.numParams();
  }

  /** The state dict: key -> {shape, data} in the official layout ([out, in] Linear weights). */
  stateDict(): StateDict {
    return this.store.stateDict();
  }

  /**
   * Load a state dict. Every key must be present with its official shape; otherwise the Error lists the
   * missing keys, the unexpected keys and the shape mismatches (nothing is loaded).
   */
  loadStateDict(state: ReadonlyMap<string, { shape: number[]; data: ArrayLike<number> }>, where = 'checkpoint'): void {
    this.checkState(state, where);
    this.store.assign(state);
  }

  dispose(): void {
    if (this.disposed) return;
    this.store.dispose();
    this.disposed = true;
  }

  /** t_embedder(t): [N, D]. */
  timestepEmbed(t: ArrayLike<number>): Tensor {
    return timestepEmbed(this.body.timestep, t);
  }

  /** x_proj of tokens [rows * n, d] (host values): [rows * n, D]. */
  protected projectTokens(tokens: ArrayLike<number>, count: number): Tensor {
    const { weight, bias } = this.body.xProj;
    return linear(tf.tensor2d(Float32Array.from(tokens), [count, this.tokenDim]), weight, bias);
  }

  /** The eps head (final_layer) on hidden states [rows, D]. */
  protected epsHead(h: Tensor): Tensor {
    return applyHead(h, this.body.finalLayer);
  }

  /** The hidden states of the last L tokens (the noised ones) of sequences h [N, seqLen, D]: [N * L, D]. */
  protected noisedHidden(h: Tensor): Tensor {
    const [N, seqLen, D] = h.shape;
    return tf.reshape(tf.slice(h, [0, seqLen - this.numTokens, 0], [N, this.numTokens, D]), [N * this.numTokens, D]);
  }

  /** Check image tokens [rows, n, d] and their raster positions [rows, n]; returns the positions. */
  protected checkTokens(name: string, tokens: ArrayLike<number>, positions: ArrayLike<number>, rows: number, n: number): Int32Array {
    checkLength(name, tokens, rows * n * this.tokenDim, `[rows=${rows}, tokens=${n}, tokenDim=${this.tokenDim}]`);
    checkLength(`${name} positions`, positions, rows * n, `[rows=${rows}, tokens=${n}] raster indices`);
    const out = new Int32Array(rows * n);
    for (let i = 0; i < out.length; i++) {
      const q = positions[i];
      if (!Number.isInteger(q) || q < 0 || q >= this.numTokens) {
        throw new Error(`${name} positions: entry ${i} is ${q}; positions are raster indices 0..${this.numTokens - 1}`);
      }
      out[i] = q;
    }
    return out;
  }

  /** The position table of the image tokens (pos_embed, image_pos_embed): [L, D]. */
  protected abstract readonly positionTable: tf.Variable;

  /**
   * x_proj(tokens) + positionTable[positions] for tokens [rows, n, d] at checked raster positions, plus the
   * timestep embedding tEmbed [rows or 1, D] when given (noised tokens): [rows, n, D]. `differentiable`:
   * the position rows carry a gradient (training). Not tidied.
   */
  protected embedImageTokens(tokens: ArrayLike<number>, positions: Int32Array, rows: number, n: number, differentiable: boolean, tEmbed?: Tensor): Tensor {
    const D = this.hiddenSize;
    const x = tf.reshape(tf.add(this.projectTokens(tokens, rows * n), embeddingRows(this.positionTable, positions, differentiable)), [rows, n, D]);
    return tEmbed ? tf.add(x, tf.reshape(tEmbed, [tEmbed.shape[0], 1, D])) : x;
  }

  /** x_proj(tokens) + positions' embedding: [rows, n, D] (no timestep: clean tokens). */
  embedTokens(tokens: ArrayLike<number>, positions: ArrayLike<number>, rows: number, n: number): tf.Tensor3D {
    const pos = this.checkTokens('tokens', tokens, positions, rows, n);
    return tf.tidy(() => this.embedImageTokens(tokens, pos, rows, n, false) as tf.Tensor3D);
  }

  /** Run tokens [R, n, D] through the blocks, appending their keys/values to the cache (forward_cache_update). */
  pushEmbedded(cache: KVCache, tokens: Tensor): void {
    if (tokens.shape[0] !== cache.rows) throw new Error(`pushEmbedded: ${tokens.shape[0]} rows but the cache holds ${cache.rows}`);
    this.runCached(cache, tokens, null, true).dispose();
  }

  /** Push clean tokens [rows, n, d] at raster `positions` [rows, n] into the cache. */
  pushClean(cache: KVCache, tokens: ArrayLike<number>, positions: ArrayLike<number>, n: number): void {
    const emb = this.embedTokens(tokens, positions, cache.rows, n);
    try {
      this.pushEmbedded(cache, emb);
    } finally {
      emb.dispose();
    }
  }

  /**
   * eps for noised tokens [rows, n, d] at `positions` and ORIGINAL timestep t, attending to the cache and
   * to each other; the cache is not changed. One row per cache row, no guidance.
   */
  predictEps(cache: KVCache, noised: ArrayLike<number>, positions: ArrayLike<number>, n: number, timestep: number): Float32Array {
    if (!Number.isFinite(timestep) || timestep < 0) throw new Error(`timestep ${timestep} is invalid; use an original diffusion timestep (0..999)`);
    const pos = this.checkTokens('tokens', noised, positions, cache.rows, n);
    const emb = tf.tidy(() => this.embedImageTokens(noised, pos, cache.rows, n, false, this.timestepEmbed([timestep])));
    const h = this.runCached(cache, emb, null, false);
    emb.dispose();
    try {
      return Float32Array.from(tf.tidy(() => this.epsHead(h)).dataSync() as Float32Array);
    } finally {
      h.dispose();
    }
  }

  private block(x: Tensor, b: BlockParams, N: number, seqLen: number, maskBias: Tensor | null, past: { k: Tensor; v: Tensor } | null) {
    return transformerBlock(x, b, { N, seqLen, hiddenSize: this.hiddenSize, numHeads: this.numHeads }, maskBias, past);
  }

  /**
   * The blocks over whole sequences seq [N, seqLen, D] under an additive mask [seqLen, seqLen] (training):
   * returns [N, seqLen, D]. `onBlock` sees each block's output (for recording activations). Not tidied.
   */
  protected runBlocks(seq: Tensor, maskBias: Float32Array, onBlock?: (i: number, x: Tensor) => void): Tensor {
    const [N, seqLen, D] = seq.shape;
    const bias = tf.tensor3d(maskBias, [seqLen, 1, seqLen]); // broadcast over the (sample, head) axis of the scores
    let x: Tensor = tf.reshape(seq, [N * seqLen, D]);
    this.body.blocks.forEach((b, i) => {
      x = this.block(x, b, N, seqLen, bias, null).x;
      onBlock?.(i, x);
    });
    return tf.reshape(x, [N, seqLen, D]);
  }

  /**
   * Run embedded tokens [R, n, D] through the blocks against the cache (what is cached, and each other
   * under `maskBias` [n, cached + n] when given). `commit` appends their keys/values to the cache. Returns
   * the final hidden states [R*n, D] (kept: the caller disposes them).
   */
  protected runCached(cache: KVCache, emb: Tensor, maskBias: Float32Array | null, commit: boolean): Tensor {
    const [R, n, D] = emb.shape;
    if (R !== cache.rows) throw new Error(`${R} rows but the cache holds ${cache.rows}`);
    const cached = cache.length;
    const result = tf.tidy(() => {
      const bias = maskBias ? tf.tensor3d(maskBias, [n, 1, cached + n]) : null;
      let x: Tensor = tf.reshape(emb, [R * n, D]);
      const layers: { k: tf.Tensor3D; v: tf.Tensor3D }[] = [];
      this.body.blocks.forEach((b, i) => {
        const r = this.block(x, b, R, n, bias, cached ? cache.layers[i] : null);
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
}
