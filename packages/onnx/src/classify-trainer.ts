/**
 * The classifier of ./classify-graph on onnxruntime-node: the loss and gradients of a labeled batch (a
 * linear probe or end-to-end fine-tuning), and logits for inference. The update (clip, AdamW) is the
 * caller's, on host arrays, as for the generative training step.
 *
 * ```ts
 * const session = await OrtClassifySession.create(config, 10, { mode: 'probe', threads: 2 });
 * const { loss, grads } = await session.lossAndGrads(params, tokens, labels); // params: classifyEntries order
 * const logits = await session.logits(params, tokens);
 * ```
 */
import { derived, type ModelConfig } from '@causalfusion/config';
import { createSession, loadOrt, toInt64, type InferenceSession, type Ort, type OrtTensor } from '@causalfusion/ort';
import {
  buildClassifyGraph,
  CLASSIFY_IO,
  classifyEntries,
  classifyGraphEntries,
  classifyTrainable,
  type ClassifyEntry,
  type ClassifyMode,
} from './classify-graph';

export interface ClassifySessionOptions {
  /** `probe`: gradients of the head only; `full`: of the head and the backbone; `infer`: logits only. */
  mode: ClassifyMode;
  /** Intra-op threads (default: ORT's choice). */
  threads?: number;
}

export interface ClassifyLossAndGrads {
  /** Mean cross-entropy of the batch. */
  loss: number;
  /** One gradient per trainable parameter ({@link OrtClassifySession.trainable} order, training layout). */
  grads: Float32Array[];
  /** [N, K] the batch's logits. */
  logits: Float32Array;
}

export class OrtClassifySession {
  /** Every parameter (classifyEntries order): what `params` holds. */
  readonly entries: ClassifyEntry[];
  /** The parameters whose gradients lossAndGrads returns. */
  readonly trainable: ClassifyEntry[];
  private readonly used: { entry: ClassifyEntry; index: number }[];
  private readonly nullClass: number;

  private constructor(
    private readonly ort: Ort,
    readonly config: ModelConfig,
    readonly numLabels: number,
    readonly mode: ClassifyMode,
    private readonly train: InferenceSession | null,
    private readonly infer: InferenceSession,
  ) {
    this.entries = classifyEntries(config, numLabels);
    const usedKeys = new Set(classifyGraphEntries(config, numLabels).map((e) => e.key));
    this.used = this.entries.map((entry, index) => ({ entry, index })).filter(({ entry }) => usedKeys.has(entry.key));
    this.trainable = classifyTrainable(config, numLabels, mode);
    this.nullClass = derived(config).nullClass!;
  }

  static async create(config: ModelConfig, numLabels: number, options: ClassifySessionOptions): Promise<OrtClassifySession> {
    const settings = { purpose: options.mode === 'infer' ? 'inference' : 'training', threads: options.threads } as const;
    const infer = await createSession(buildClassifyGraph(config, numLabels, 'infer'), settings);
    const train = options.mode === 'infer' ? null : await createSession(buildClassifyGraph(config, numLabels, options.mode), settings);
    return new OrtClassifySession(loadOrt(), config, numLabels, options.mode, train, infer);
  }

  /** Index in `params` of each trainable parameter. */
  trainableIndices(): number[] {
    const at = new Map(this.entries.map((e, i) => [e.key, i]));
    return this.trainable.map((e) => at.get(e.key)!);
  }

  private feeds(params: ArrayLike<Float32Array>, tokens: Float32Array): { feeds: Record<string, OrtTensor>; N: number } {
    if (params.length !== this.entries.length) throw new Error(`classifier: ${params.length} parameter arrays for ${this.entries.length} parameters`);
    const geo = derived(this.config);
    const per = geo.numTokens * geo.tokenDim;
    if (tokens.length === 0 || tokens.length % per !== 0)
      throw new Error(`classifier: ${tokens.length} token values is not a whole number of images of ${per} values`);
    const N = tokens.length / per;
    const T = this.ort.Tensor;
    const feeds: Record<string, OrtTensor> = {};
    for (const { entry, index } of this.used) feeds[entry.key] = new T('float32', params[index], entry.shape);
    feeds[CLASSIFY_IO.condLabels] = new T('int64', new BigInt64Array(N).fill(BigInt(this.nullClass)), [N]);
    feeds[CLASSIFY_IO.tokens] = new T('float32', tokens, [N, geo.numTokens, geo.tokenDim]);
    return { feeds, N };
  }

  /** Loss, gradients and logits of a labeled batch: tokens [N, L, d] (raster), labels [N] in 0..K-1. */
  async lossAndGrads(params: ArrayLike<Float32Array>, tokens: Float32Array, labels: ArrayLike<number>): Promise<ClassifyLossAndGrads> {
    if (!this.train) throw new Error('classifier: this session was created for inference (mode infer)');
    const { feeds, N } = this.feeds(params, tokens);
    if (labels.length !== N) throw new Error(`classifier: ${labels.length} labels for ${N} images`);
    for (let i = 0; i < N; i++) {
      if (!Number.isInteger(labels[i]) || labels[i] < 0 || labels[i] >= this.numLabels)
        throw new Error(`classifier: label ${labels[i]} at ${i} is not in 0..${this.numLabels - 1}`);
    }
    const T = this.ort.Tensor;
    feeds[CLASSIFY_IO.labels] = new T('int64', toInt64(labels), [N]);
    feeds[CLASSIFY_IO.weights] = new T('float32', new Float32Array(N).fill(1 / N), [N]);
    const out = await this.train.run(feeds);
    return {
      loss: (out[CLASSIFY_IO.loss].data as Float32Array)[0],
      grads: this.trainable.map((e) => out[CLASSIFY_IO.grad(e.key)].data as Float32Array),
      logits: out[CLASSIFY_IO.logits].data as Float32Array,
    };
  }

  /** [N, K] logits of tokens [N, L, d] (raster order). */
  async logits(params: ArrayLike<Float32Array>, tokens: Float32Array): Promise<Float32Array> {
    const { feeds } = this.feeds(params, tokens);
    const out = await this.infer.run(feeds);
    return out[CLASSIFY_IO.logits].data as Float32Array;
  }

  async release(): Promise<void> {
    await this.train?.release();
    await this.infer.release();
  }
}

/** Row-wise softmax of [N, K] logits: the predicted class and its probability per row. */
export function predictions(logits: ArrayLike<number>, K: number): { labels: Int32Array; probs: Float32Array } {
  const N = logits.length / K;
  const labels = new Int32Array(N);
  const probs = new Float32Array(N);
  for (let n = 0; n < N; n++) {
    let best = 0;
    let max = -Infinity;
    for (let k = 0; k < K; k++) {
      if (logits[n * K + k] > max) {
        max = logits[n * K + k];
        best = k;
      }
    }
    let sum = 0;
    for (let k = 0; k < K; k++) sum += Math.exp(logits[n * K + k] - max);
    labels[n] = best;
    probs[n] = 1 / sum;
  }
  return { labels, probs };
}
