/**
 * The official CausalFusion transformer (`CausalDiffusionModel` in models.py), layer for layer:
 *
 *   cond tokens   = label_table[y].reshape(C, D) + cond_pos_embed
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
 * The layers, the parameters and the state dict are the shared body's (./layers); this file holds what
 * is particular to the class-conditional model: the label and position tables, the training forward
 * and the cache calls.
 */
import { tf } from '@causalfusion/backend';
import {
  checkLength,
  checkStateDict,
  CLASS_KEYS,
  derived,
  prepareTrainingTokens,
  trainingEntries,
  validateConfig,
  type ModelConfig,
  type TrainingInputs,
  type TrainingRandomness,
} from '@causalfusion/config';
import { embeddingRows, KVCache, TransformerBody } from './layers';

type Tensor = tf.Tensor;

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

export interface CreateModelOptions {
  /** Seed of the initial weights (official init rules: xavier-uniform linears, N(0, 0.02) label table...). */
  seed?: number | string;
}

/** The parameters outside the body (see {@link TransformerBody}): the position tables and the label table. */
export interface ModelParams {
  /** [L, D] */
  posEmbed: tf.Variable;
  /** [C, D] */
  condPosEmbed: tf.Variable;
  /** [numClasses (+1 null), C * D] */
  labelTable: tf.Variable;
}

export class CausalDiffusionModel extends TransformerBody {
  readonly config: ModelConfig;
  /** The null class index (numClasses), or null when the model was built without label dropout. */
  readonly nullClass: number | null;
  readonly params: ModelParams;
  protected readonly positionTable: tf.Variable;

  constructor(config: ModelConfig, options: CreateModelOptions = {}) {
    validateConfig(config);
    super(trainingEntries(config), options.seed ?? 0, { ...config, ...derived(config) });
    this.config = { ...config };
    this.nullClass = derived(config).nullClass;
    this.params = {
      posEmbed: this.store.variable(CLASS_KEYS.posEmbed),
      condPosEmbed: this.store.variable(CLASS_KEYS.condPosEmbed),
      labelTable: this.store.variable(CLASS_KEYS.labelTable),
    };
    this.positionTable = this.params.posEmbed;
  }

  protected override checkState(state: ReadonlyMap<string, { shape: number[]; data: ArrayLike<number> }>, where: string): void {
    checkStateDict(this.config, state, where);
  }

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

  // ---------------------------------------------------------------- training

  /**
   * The official training forward (`CausalDiffusionModel.forward`): the host half (shuffle, label dropout,
   * clean context, mask: `prepareTrainingTokens` of @causalfusion/config), then the tensor half: embed the
   * cond, context and noised tokens (the timestep embedding on the noised ones only), run the blocks under
   * the generalized causal mask and return (noise - eps)^2. Like the official code, label dropout is always
   * applied here (it is the training path). Not wrapped in tf.tidy, so it can run inside tf.variableGrads;
   * the caller disposes the result.
   */
  trainingForward(inputs: TrainingInputs, randomness: TrainingRandomness = {}, options: { intermediates?: boolean } = {}): TrainingForwardResult {
    const c = this.config;
    const N = inputs.t.length;
    const L = this.numTokens;
    const d = this.tokenDim;
    const D = c.hiddenSize;
    const C = c.numCondTokens;
    const prepared = prepareTrainingTokens(c, inputs, randomness);
    const { Lc, seqLen, ids, labels } = prepared;

    const p = this.params;
    const inter: Record<string, Tensor> = {};
    const record = (name: string, t: Tensor) => {
      if (options.intermediates) inter[name] = tf.keep(t.clone());
    };

    // pos_embed of every shuffled position, [N, L, D]
    const pos = tf.reshape(embeddingRows(p.posEmbed, ids, p.posEmbed.trainable), [N, L, D]);
    // cond tokens [N, C, D]
    const yEmbed = embeddingRows(p.labelTable, labels, true);
    record('y_embed_raw', yEmbed);
    const cond = tf.add(tf.reshape(yEmbed, [N, C, D]), p.condPosEmbed);
    // timestep embedding, added to the noised tokens only
    const tEmbed = this.timestepEmbed(inputs.t);
    record('t_embed', tEmbed);
    const noised = tf.add(tf.add(tf.reshape(this.projectTokens(prepared.noisedShuf, N * L), [N, L, D]), pos), tf.reshape(tEmbed, [N, 1, D]));
    const parts: Tensor[] = [cond];
    if (Lc > 0) parts.push(tf.add(tf.reshape(this.projectTokens(prepared.cleanShuf, N * Lc), [N, Lc, D]), tf.slice(pos, [0, 0, 0], [N, Lc, D])));
    parts.push(noised);
    const seq = tf.concat(parts, 1);
    record('sequence_into_block0', seq);

    const h = this.runBlocks(seq, prepared.maskBias, (i, x) => record(`block${i}_out`, tf.reshape(x, [N, seqLen, D])));
    const hNoised = this.noisedHidden(h);
    record('final_hidden_noised_tokens', tf.reshape(hNoised, [N, L, D]));
    const pred = this.epsHead(hNoised);
    record('pred_noise_shuffled', tf.reshape(pred, [N, L, d]));
    const loss = tf.reshape(tf.squaredDifference(tf.tensor2d(prepared.noiseShuf, [N * L, d]), pred), [N, L, d]) as tf.Tensor3D;
    return { loss, idsShuffle: ids, effectiveLabels: labels, intermediates: options.intermediates ? inter : undefined };
  }

  // ---------------------------------------------------------------- inference with a KV cache

  /**
   * A new KV cache holding the cond tokens of `labels` (numClasses = the null class), as sample.py:
   * label_table[y] (no dropout) reshaped to [C, D] plus cond_pos_embed. For CFG the official sampler
   * passes the labels followed by as many null classes.
   */
  createCache(labels: ArrayLike<number>): KVCache {
    const ids = this.checkLabels(labels, 'createCache labels');
    const R = ids.length;
    if (R === 0) throw new Error('createCache: give at least one label');
    const cache = new KVCache(R, this.config.numHeads, []);
    const cond = tf.tidy(() =>
      tf.add(
        tf.reshape(tf.gather(this.params.labelTable, tf.tensor1d(ids, 'int32')), [R, this.config.numCondTokens, this.config.hiddenSize]),
        this.params.condPosEmbed,
      ),
    );
    this.pushEmbedded(cache, cond);
    cond.dispose();
    return cache;
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
