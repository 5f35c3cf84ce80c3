/**
 * The official CausalFusion transformer (`CausalDiffusionModel` in models.py), layer for layer:
 *
 *   cond tokens   = label_table[y].reshape(T, D) + cond_pos_embed
 *   clean tokens  = x_proj(x) + pos_embed                       (no timestep)
 *   noised tokens = x_proj(xn) + pos_embed + t_embedder(t)      (the timestep is only added here)
 *   blocks: x += attn(norm1(x)); x += mlp(norm2(x))            (pre-LN; qkv without bias,
 *           per-head LayerNorm on q and k, tanh-GELU MLP)
 *   eps = final_layer(noised tokens) = Linear(LayerNorm(h))
 *
 * Training runs the whole sequence [cond | clean tokens of AR steps 1..S-1 | noised tokens of all
 * steps] under the generalized causal mask. Inference keeps a KV cache: cond tokens and finished
 * clean tokens are pushed once; noised tokens attend to the cache and to each other.
 *
 * Parameters are tf.Variables. Linear weights are stored [in, out] (transposed from PyTorch) so that
 * every product is a plain matMul; checkpoints convert to and from the official [out, in].
 */
import { tf } from '@causalfusion/backend';
import { checkStateDict, derived, ModelConfig, trainingEntries, validateConfig } from './config';
import { initialWeights } from './init';
import { get2dSincosPosEmbed, timestepSinusoid } from './embeddings';
import { prepareTrainingTokens, type TrainingInputs, type TrainingRandomness } from './tokens';
export { patchify, unpatchify, type TrainingInputs, type TrainingRandomness } from './tokens';
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
export interface ModelParams {
  /** [L, D] */
  posEmbed: tf.Variable;
  /** [T, D] */
  condPosEmbed: tf.Variable;
  xProj: LinearParams;
  tMlp0: LinearParams;
  tMlp2: LinearParams;
  /** [numClasses (+1 null), T * D] */
  labelTable: tf.Variable;
  blocks: BlockParams[];
  finalNorm: LayerNormParams;
  finalLinear: LinearParams;
}

/** One checkpoint entry: an official state_dict key and where it lives here. */
export interface StateEntry {
  key: string;
  variable: tf.Variable;
  /** The official shape. */
  shape: number[];
  /** true for nn.Linear weights: official [out, in], ours [in, out]. */
  transposed: boolean;
}

/** The per-layer key/value cache of a batch of `rows` sequences (see {@link CausalDiffusionModel.createCache}). */
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
    return new KVCache(this.rows, this.numHeads, this.layers.map((l) => ({ k: tf.keep(l.k.clone()), v: tf.keep(l.v.clone()) })));
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

export interface TrainingForwardResult {
  /** [N, L, tokenDim]: (noise - pred)^2 per element, in SHUFFLED token order (as the official forward). */
  loss: tf.Tensor3D;
  /** [N*L] the permutation used. */
  idsShuffle: Int32Array;
  /** [N] labels after dropout. */
  effectiveLabels: Int32Array;
  /** Named activations (only with `intermediates: true`); the caller disposes them. */
  intermediates?: Record<string, Tensor>;
}

export interface InferenceResult {
  /** [N, n, tokenDim] the eps to use: guided, or the cond branch outside the CFG interval / without CFG. */
  eps: Float32Array;
  /** [N, n, tokenDim] the conditional branch. */
  epsCond: Float32Array;
  /** [N, n, tokenDim] the unconditional branch (null without CFG). */
  epsUncond: Float32Array | null;
  /** Whether guidance was applied (cfgScale > 1 and lo <= t < hi). */
  guided: boolean;
}

function checkLength(name: string, values: ArrayLike<number>, expected: number, layout: string): void {
  if (values == null || values.length !== expected) {
    throw new Error(`${name} has ${values == null ? 'no' : values.length} values, expected ${expected} (${layout})`);
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

/**
 * A block's parameters from its variables by official key (`<prefix>.norm1.weight`, `<prefix>.attn.qkv.weight`,
 * ...; qkv has no bias): the block layout every model built from these blocks shares.
 */
export function blockParams(variable: (key: string) => tf.Variable, prefix: string): BlockParams {
  const lin = (p: string, bias = true): LinearParams => ({ weight: variable(`${p}.weight`), bias: bias ? variable(`${p}.bias`) : null });
  const ln = (p: string): LayerNormParams => ({ weight: variable(`${p}.weight`), bias: variable(`${p}.bias`) });
  return {
    norm1: ln(`${prefix}.norm1`),
    qkv: lin(`${prefix}.attn.qkv`, false),
    qNorm: ln(`${prefix}.attn.q_norm`),
    kNorm: ln(`${prefix}.attn.k_norm`),
    proj: lin(`${prefix}.attn.proj`),
    norm2: ln(`${prefix}.norm2`),
    fc1: lin(`${prefix}.mlp.fc1`),
    fc2: lin(`${prefix}.mlp.fc2`),
  };
}

/** The sizes a block needs: N sequences of S tokens, width D in H heads. */
export interface BlockDims {
  N: number;
  S: number;
  hiddenSize: number;
  numHeads: number;
}

/**
 * Generalized causal attention on h [N*S, D] (already norm1-ed). With `past`, the keys and values
 * of earlier tokens are prepended (KV cache); returns the output [N*S, D] and the full keys/values.
 */
function attention(h: Tensor, b: BlockParams, dims: BlockDims, maskBias: Tensor | null, past: { k: Tensor; v: Tensor } | null): { out: Tensor; k: Tensor; v: Tensor } {
  const { N, S, hiddenSize: D, numHeads: H } = dims;
  const hd = D / H;
  // qkv (no bias): output columns are (q|k|v) x heads x headDim. Three products with column slices
  // of the weight are cheaper on wasm than one product and a split of its output.
  const [q2, k2, v2] = [0, 1, 2].map((i) => matMul(h, tf.slice(b.qkv.weight, [0, i * D], [D, D])));
  // Per-head LayerNorm on rows of headDim, then each of q, k, v goes with ONE transpose into the
  // layout of convBatchMatMul, with the (sample, head) pairs B = N*H as its batch:
  //   q [S, hd, B] (scaled), k [hd, B, keys], v [keys, B, hd].
  const headRows = (t: Tensor, norm: LayerNormParams) => tf.reshape(layerNorm(tf.reshape(t, [N * S * H, hd]), norm.weight, norm.bias), [N, S, H, hd]);
  const q = tf.mul(tf.reshape(tf.transpose(headRows(q2, b.qNorm), [1, 3, 0, 2]), [S, hd, N * H]), 1 / Math.sqrt(hd));
  let k = tf.reshape(tf.transpose(headRows(k2, b.kNorm), [3, 0, 2, 1]), [hd, N * H, S]);
  let v = tf.reshape(tf.transpose(tf.reshape(v2, [N, S, H, hd]), [1, 0, 2, 3]), [S, N * H, hd]);
  if (past) {
    k = tf.concat([past.k, k], 2);
    v = tf.concat([past.v, v], 0);
  }
  let scores = convBatchMatMul(q, k); // [S, B, keys]
  if (maskBias) scores = tf.add(scores, maskBias); // mask [S, 1, keys]
  const attn = tf.softmax(scores);
  // out [S, B, hd] = [S, N, D] -> [N*S, D]
  const o = tf.reshape(tf.transpose(tf.reshape(convBatchMatMul(tf.transpose(attn, [0, 2, 1]), v), [S, N, D]), [1, 0, 2]), [N * S, D]);
  return { out: linear(o, b.proj.weight, b.proj.bias), k, v };
}

/**
 * One pre-LN block of the in-context DiT (QK-LayerNorm attention, tanh-GELU MLP, no adaLN) on x [N*S, D],
 * with an optional additive mask [S, 1, keys] and past keys/values. Returns x and the keys/values (past
 * included) for a KV cache. Shared with other models built from the same blocks (e.g. @causalfusion/multimodal).
 */
export function transformerBlock(x: Tensor, b: BlockParams, dims: BlockDims, maskBias: Tensor | null, past: { k: Tensor; v: Tensor } | null): { x: Tensor; k: Tensor; v: Tensor } {
  const a = attention(layerNorm(x, b.norm1.weight, b.norm1.bias), b, dims, maskBias, past);
  const h = tf.add(x, a.out);
  const m = linear(geluTanh(linear(layerNorm(h, b.norm2.weight, b.norm2.bias), b.fc1.weight, b.fc1.bias)), b.fc2.weight, b.fc2.bias);
  return { x: tf.add(h, m), k: a.k, v: a.v };
}

export interface CreateModelOptions {
  /** Seed of the initial weights (official init rules: xavier-uniform linears, N(0, 0.02) label table...). */
  seed?: number | string;
}

export class CausalDiffusionModel {
  readonly config: ModelConfig;
  /** L: tokens per sample. */
  readonly numTokens: number;
  /** Values per token (p*p*C). */
  readonly tokenDim: number;
  readonly headDim: number;
  /** The null class index (numClasses), or null when the model was built without label dropout. */
  readonly nullClass: number | null;
  readonly params: ModelParams;
  private disposed = false;

  constructor(config: ModelConfig, options: CreateModelOptions = {}) {
    validateConfig(config);
    this.config = { ...config };
    const d = derived(config);
    this.numTokens = d.numTokens;
    this.tokenDim = d.tokenDim;
    this.headDim = d.headDim;
    this.nullClass = d.nullClass;
    // the same initial values on every runtime (see ./init), placed by key
    const entries = trainingEntries(config);
    const init = initialWeights(config, options.seed ?? 0);
    const byKey = new Map(entries.map((e, i) => [e.key, { data: init[i], shape: e.shape, trainable: e.trainable }]));
    const v = (key: string) => {
      const e = byKey.get(key)!;
      // tf.variable keeps its own reference to the data: free the initial tensor so dispose() frees all
      const t = tf.tensor(e.data, e.shape);
      const variable = tf.variable(t, e.trainable);
      t.dispose();
      return variable;
    };
    const lin = (prefix: string, bias = true): LinearParams => ({ weight: v(`${prefix}.weight`), bias: bias ? v(`${prefix}.bias`) : null });
    const ln = (prefix: string): LayerNormParams => ({ weight: v(`${prefix}.weight`), bias: v(`${prefix}.bias`) });

    this.params = {
      posEmbed: v('pos_embed'),
      condPosEmbed: v('cond_pos_embed'),
      xProj: lin('x_proj'),
      tMlp0: lin('t_embedder.mlp.0'),
      tMlp2: lin('t_embedder.mlp.2'),
      labelTable: v('y_embedder.embedding_table.weight'),
      blocks: Array.from({ length: config.depth }, (_, i) => blockParams(v, `blocks.${i}`)),
      finalNorm: ln('final_layer.0'),
      finalLinear: lin('final_layer.1'),
    };
  }

  // ---------------------------------------------------------------- parameters

  /** The official state_dict, in its order, mapped to our variables. */
  stateEntries(): StateEntry[] {
    const c = this.config;
    const p = this.params;
    const out: StateEntry[] = [];
    const add = (key: string, variable: tf.Variable, shape: number[], transposed = false) => out.push({ key, variable, shape, transposed });
    const addLinear = (prefix: string, l: LinearParams) => {
      const [fanIn, fanOut] = l.weight.shape;
      add(`${prefix}.weight`, l.weight, [fanOut, fanIn], true);
      if (l.bias) add(`${prefix}.bias`, l.bias, [fanOut]);
    };
    const addNorm = (prefix: string, n: LayerNormParams) => {
      add(`${prefix}.weight`, n.weight, [...n.weight.shape]);
      add(`${prefix}.bias`, n.bias, [...n.bias.shape]);
    };
    add('pos_embed', p.posEmbed, [1, this.numTokens, c.hiddenSize]);
    add('cond_pos_embed', p.condPosEmbed, [1, c.numCondTokens, c.hiddenSize]);
    addLinear('x_proj', p.xProj);
    addLinear('t_embedder.mlp.0', p.tMlp0);
    addLinear('t_embedder.mlp.2', p.tMlp2);
    add('y_embedder.embedding_table.weight', p.labelTable, [...p.labelTable.shape]);
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
    return out;
  }

  /** The variables the optimizer updates (pos_embed only when trainablePos). */
  trainableVariables(): tf.Variable[] {
    return this.stateEntries()
      .map((e) => e.variable)
      .filter((v) => v.trainable);
  }

  numParams(): number {
    return this.stateEntries().reduce((a, e) => a + e.variable.size, 0);
  }

  /** The official state_dict: key -> {shape, data} with official layouts ([out, in] linear weights). */
  stateDict(): Map<string, { shape: number[]; data: Float32Array }> {
    const out = new Map<string, { shape: number[]; data: Float32Array }>();
    for (const e of this.stateEntries()) {
      const data = tf.tidy(() => (e.transposed ? tf.transpose(e.variable) : e.variable).dataSync() as Float32Array);
      out.set(e.key, { shape: e.shape, data: Float32Array.from(data) });
    }
    return out;
  }

  /**
   * Load an official state_dict. Every key must be present with its official shape; otherwise the
   * Error lists the missing keys, the unexpected keys and the shape mismatches (nothing is loaded).
   */
  loadStateDict(state: Map<string, { shape: number[]; data: Float32Array }>, where = 'checkpoint'): void {
    checkStateDict(this.config, state, where);
    const entries = this.stateEntries();
    for (const e of entries) {
      const t = state.get(e.key)!;
      tf.tidy(() => {
        const official = tf.tensor(t.data, t.shape);
        e.variable.assign((e.transposed ? tf.transpose(official) : official).reshape(e.variable.shape));
      });
    }
  }

  dispose(): void {
    if (this.disposed) return;
    for (const e of this.stateEntries()) e.variable.dispose();
    this.disposed = true;
  }

  // ---------------------------------------------------------------- building blocks

  private checkLabels(labels: ArrayLike<number>, where: string): Int32Array {
    const out = new Int32Array(labels.length);
    const top = this.nullClass ?? this.config.numClasses - 1;
    for (let i = 0; i < labels.length; i++) {
      const y = labels[i];
      if (!Number.isInteger(y) || y < 0 || y > top) {
        const nullNote = this.nullClass === null ? ' (this model has no null class: classDropoutProb is 0)' : ` (${this.nullClass} = the null class)`;
        throw new Error(`${where}: label ${y} at index ${i} is not a class of this model; use 0..${top}${nullNote}`);
      }
      out[i] = y;
    }
    return out;
  }

  /** t_embedder(t): [N, D]. */
  timestepEmbed(t: ArrayLike<number>): Tensor {
    const freq = tf.tensor2d(timestepSinusoid(t, 256), [t.length, 256]);
    const { tMlp0, tMlp2 } = this.params;
    return linear(silu(linear(freq, tMlp0.weight, tMlp0.bias)), tMlp2.weight, tMlp2.bias);
  }

  /** Rows of `table` at `ids` ({@link embeddingRows}). */
  private rowsOf(table: tf.Variable, ids: Int32Array, differentiable: boolean): Tensor {
    return embeddingRows(table, ids, differentiable);
  }

  private block(x: Tensor, b: BlockParams, N: number, S: number, maskBias: Tensor | null, past: { k: Tensor; v: Tensor } | null): { x: Tensor; k: Tensor; v: Tensor } {
    return transformerBlock(x, b, { N, S, hiddenSize: this.config.hiddenSize, numHeads: this.config.numHeads }, maskBias, past);
  }

  private finalLayer(h: Tensor): Tensor {
    const { finalNorm, finalLinear } = this.params;
    return linear(layerNorm(h, finalNorm.weight, finalNorm.bias), finalLinear.weight, finalLinear.bias);
  }

  // ---------------------------------------------------------------- training

  /**
   * The official training forward (`CausalDiffusionModel.forward`): shuffle the tokens per sample,
   * keep the clean tokens of all but the last AR step as context, add the timestep embedding to the
   * noised tokens, run the blocks under the generalized causal mask and return (noise - eps)^2.
   * Like the official code, label dropout is always applied here (it is the training path).
   * Not wrapped in tf.tidy, so it can run inside tf.variableGrads; the caller disposes the result.
   */
  trainingForward(inputs: TrainingInputs, randomness: TrainingRandomness = {}, options: { intermediates?: boolean } = {}): TrainingForwardResult {
    const c = this.config;
    const N = inputs.t.length;
    const L = this.numTokens;
    const d = this.tokenDim;
    const D = c.hiddenSize;
    const T = c.numCondTokens;
    const prepared = prepareTrainingTokens(c, inputs, randomness);
    const { Lc, S, splitSizes, ids, labels, cleanShuf, noisedShuf: xnShuf, noiseShuf } = prepared;

    const p = this.params;
    const inter: Record<string, Tensor> = {};
    const record = (name: string, t: Tensor) => {
      if (options.intermediates) inter[name] = tf.keep(t.clone());
    };

    // pos_embed of every shuffled position, [N, L, D]
    const pos = tf.reshape(this.rowsOf(p.posEmbed, ids, p.posEmbed.trainable), [N, L, D]);
    // cond tokens [N, T, D]
    const yEmbed = this.rowsOf(p.labelTable, labels, true);
    record('y_embed_raw', yEmbed);
    const cond = tf.add(tf.reshape(yEmbed, [N, T, D]), p.condPosEmbed);
    // timestep embedding, added to the noised tokens only
    const tEmbed = this.timestepEmbed(inputs.t);
    record('t_embed', tEmbed);
    const noised = tf.add(tf.add(tf.reshape(linear(tf.tensor2d(xnShuf, [N * L, d]), p.xProj.weight, p.xProj.bias), [N, L, D]), pos), tf.reshape(tEmbed, [N, 1, D]));
    const parts: Tensor[] = [cond];
    if (Lc > 0) {
      const clean = tf.add(tf.reshape(linear(tf.tensor2d(cleanShuf, [N * Lc, d]), p.xProj.weight, p.xProj.bias), [N, Lc, D]), tf.slice(pos, [0, 0, 0], [N, Lc, D]));
      parts.push(clean);
    }
    parts.push(noised);
    const seq = tf.concat(parts, 1);
    record('sequence_into_block0', seq);

    // the generalized causal mask as an additive bias (-inf = masked)
    const maskBias = tf.tensor3d(prepared.maskBias, [S, 1, S]); // broadcast over the (sample, head) axis of the scores

    let x: Tensor = tf.reshape(seq, [N * S, D]);
    p.blocks.forEach((b, i) => {
      x = this.block(x, b, N, S, maskBias, null).x;
      record(`block${i}_out`, tf.reshape(x, [N, S, D]));
    });
    const hNoised = tf.reshape(tf.slice(tf.reshape(x, [N, S, D]), [0, S - L, 0], [N, L, D]), [N * L, D]);
    record('final_hidden_noised_tokens', tf.reshape(hNoised, [N, L, D]));
    const pred = this.finalLayer(hNoised);
    record('pred_noise_shuffled', tf.reshape(pred, [N, L, d]));
    const loss = tf.reshape(tf.squaredDifference(tf.tensor2d(noiseShuf, [N * L, d]), pred), [N, L, d]) as tf.Tensor3D;
    return { loss, idsShuffle: ids, effectiveLabels: labels, intermediates: options.intermediates ? inter : undefined };
  }

  // ---------------------------------------------------------------- inference with a KV cache

  /** Run tokens [R, n, D] through the blocks, appending their keys/values to the cache (forward_cache_update). */
  pushEmbedded(cache: KVCache, tokens: Tensor): void {
    const [R, n, D] = tokens.shape;
    if (R !== cache.rows) throw new Error(`pushEmbedded: ${R} rows but the cache holds ${cache.rows}`);
    const layers = tf.tidy(() => {
      let x: Tensor = tf.reshape(tokens, [R * n, D]);
      const out: { k: tf.Tensor3D; v: tf.Tensor3D }[] = [];
      this.params.blocks.forEach((b, i) => {
        const past = cache.layers.length ? cache.layers[i] : null;
        const r = this.block(x, b, R, n, null, past);
        x = r.x;
        out.push({ k: r.k as tf.Tensor3D, v: r.v as tf.Tensor3D });
      });
      return out;
    });
    const old = cache.layers;
    cache.layers = layers;
    for (const l of old) {
      l.k.dispose();
      l.v.dispose();
    }
  }

  /**
   * A new KV cache holding the cond tokens of `labels` (numClasses = the null class), as sample.py:
   * label_table[y] (no dropout) reshaped to [T, D] plus cond_pos_embed. For CFG the official sampler
   * passes the labels followed by as many null classes.
   */
  createCache(labels: ArrayLike<number>): KVCache {
    const ids = this.checkLabels(labels, 'createCache labels');
    const R = ids.length;
    if (R === 0) throw new Error('createCache: give at least one label');
    const cache = new KVCache(R, this.config.numHeads, []);
    const cond = tf.tidy(() => tf.add(tf.reshape(tf.gather(this.params.labelTable, tf.tensor1d(ids, 'int32')), [R, this.config.numCondTokens, this.config.hiddenSize]), this.params.condPosEmbed));
    this.pushEmbedded(cache, cond);
    cond.dispose();
    return cache;
  }

  private checkTokens(name: string, tokens: ArrayLike<number>, positions: ArrayLike<number>, rows: number, n: number): Int32Array {
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

  /** x_proj(tokens) + pos_embed[positions]: [R, n, D] (no timestep: clean tokens). */
  embedTokens(tokens: ArrayLike<number>, positions: ArrayLike<number>, rows: number, n: number): tf.Tensor3D {
    const pos = this.checkTokens('tokens', tokens, positions, rows, n);
    const p = this.params;
    return tf.tidy(() => {
      const e = linear(tf.tensor2d(Float32Array.from(tokens), [rows * n, this.tokenDim]), p.xProj.weight, p.xProj.bias);
      return tf.reshape(tf.add(e, tf.gather(p.posEmbed, tf.tensor1d(pos, 'int32'))), [rows, n, this.config.hiddenSize]) as tf.Tensor3D;
    });
  }

  /** Push clean tokens [rows, n, tokenDim] at raster `positions` [rows, n] into the cache. */
  pushClean(cache: KVCache, tokens: ArrayLike<number>, positions: ArrayLike<number>, n: number): void {
    const emb = this.embedTokens(tokens, positions, cache.rows, n);
    try {
      this.pushEmbedded(cache, emb);
    } finally {
      emb.dispose();
    }
  }

  /**
   * eps for noised tokens [rows, n, tokenDim] at `positions` and ORIGINAL timestep t, attending to the
   * cache and to each other; the cache is not changed. One row per cache row, no guidance.
   */
  predictEps(cache: KVCache, noised: ArrayLike<number>, positions: ArrayLike<number>, n: number, timestep: number): Float32Array {
    const R = cache.rows;
    if (!Number.isFinite(timestep) || timestep < 0) throw new Error(`timestep ${timestep} is invalid; use an original diffusion timestep (0..999)`);
    const emb = this.embedTokens(noised, positions, R, n);
    try {
      return tf.tidy(() => {
        const D = this.config.hiddenSize;
        let x: Tensor = tf.reshape(tf.add(emb, tf.reshape(this.timestepEmbed([timestep]), [1, 1, D])), [R * n, D]);
        this.params.blocks.forEach((b, i) => {
          x = this.block(x, b, R, n, null, cache.layers[i]).x;
        });
        return Float32Array.from(this.finalLayer(x).dataSync() as Float32Array);
      });
    } finally {
      emb.dispose();
    }
  }

  /**
   * The official `forward_inference`: with cfgScale > 1 the cache holds 2N rows (conditions, then
   * null classes), the N inputs are duplicated, and the result is uncond + s (cond - uncond) when
   * lo <= t < hi on the original timestep, else the cond branch. With cfgScale = 1 the cache holds N rows.
   */
  forwardInference(
    noised: ArrayLike<number>,
    timestep: number,
    cache: KVCache,
    positions: ArrayLike<number>,
    n: number,
    cfgScale = 1,
    cfgInterval: [number, number] = [0, 1000],
  ): InferenceResult {
    if (!(cfgScale >= 1)) throw new Error(`cfgScale ${cfgScale} is below 1; use 1 (no guidance) or more`);
    const cfg = cfgScale > 1;
    const N = cfg ? cache.rows / 2 : cache.rows;
    if (cfg && cache.rows % 2 !== 0) {
      throw new Error(`CFG needs a cache with 2N rows (N conditions then N null classes), this one has ${cache.rows}`);
    }
    const per = N * n * this.tokenDim;
    checkLength('noised', noised, per, `[N=${N}, tokens=${n}, tokenDim=${this.tokenDim}] for a cache of ${cache.rows} rows`);
    checkLength('positions', positions, N * n, `[N=${N}, tokens=${n}]`);
    if (!cfg) {
      const eps = this.predictEps(cache, noised, positions, n, timestep);
      return { eps, epsCond: eps, epsUncond: null, guided: false };
    }
    const both = new Float32Array(2 * per);
    for (let i = 0; i < per; i++) both[i] = both[per + i] = noised[i];
    const pos2 = new Int32Array(2 * N * n);
    for (let i = 0; i < N * n; i++) pos2[i] = pos2[N * n + i] = positions[i];
    const out = this.predictEps(cache, both, pos2, n, timestep);
    const epsCond = out.slice(0, per);
    const epsUncond = out.slice(per);
    const guided = cfgInterval[0] <= timestep && timestep < cfgInterval[1];
    let eps = epsCond;
    if (guided) {
      // float32 arithmetic in the official order: uncond + s * (cond - uncond)
      const f = Math.fround;
      eps = new Float32Array(per);
      for (let i = 0; i < per; i++) eps[i] = f(epsUncond[i] + f(f(cfgScale) * f(epsCond[i] - epsUncond[i])));
    }
    return { eps, epsCond, epsUncond, guided };
  }
}
