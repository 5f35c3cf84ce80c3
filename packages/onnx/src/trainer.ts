/**
 * The training step on onnxruntime-node: the loss and every trainable parameter's gradient of a batch
 * (or a data-parallel shard) from one `run` of the training graph (./train-graph). No tfjs. The update
 * (clip, AdamW, EMA) is the caller's, on host arrays, as for every runtime.
 *
 * ```ts
 * const session = await OrtTrainingSession.create(config, { threads: 2 });
 * const { loss, grads } = await session.lossAndGrads(params, shard); // params: trainingEntries order
 * ```
 */
import { createDiffusion, type GaussianDiffusion } from '@causalfusion/diffusion';
import { getArWeights } from '@causalfusion/sampler';
import { derived, prepareTrainingTokens, trainingEntries, type ModelConfig, type ParamEntry, type TrainingShard } from '@causalfusion/config';
import { createSession, loadOrt, toInt64, type InferenceSession, type Ort, type OrtTensor } from '@causalfusion/ort';
import { buildTrainingGraph, TRAIN_IO } from './train-graph';

export interface TrainingSessionOptions {
  /** Intra-op threads (default: ORT's choice, one per core). */
  threads?: number;
}

export interface LossAndGrads {
  /** The shard's share of the batch-mean loss (shares add up to the loss). */
  loss: number;
  /** One gradient per trainable parameter, in trainingEntries order (training layout). */
  grads: Float32Array[];
}

export class OrtTrainingSession {
  readonly entries: ParamEntry[];
  readonly trainable: ParamEntry[];
  private readonly diffusion: GaussianDiffusion;

  private constructor(
    private readonly ort: Ort,
    readonly config: ModelConfig,
    /** With and without a clean context (a one-AR-step batch has none). */
    private readonly sessions: { withClean: InferenceSession; withoutClean: InferenceSession },
  ) {
    this.entries = trainingEntries(config);
    this.trainable = this.entries.filter((e) => e.trainable);
    this.diffusion = createDiffusion({ respacing: '' });
  }

  static async create(config: ModelConfig, options: TrainingSessionOptions = {}): Promise<OrtTrainingSession> {
    const settings = { purpose: 'training', threads: options.threads } as const;
    const [withClean, withoutClean] = await Promise.all([
      createSession(buildTrainingGraph(config, { withClean: true }), settings),
      createSession(buildTrainingGraph(config, { withClean: false }), settings),
    ]);
    return new OrtTrainingSession(loadOrt(), config, { withClean, withoutClean });
  }

  /**
   * The shard's loss share and gradients for `params` (every parameter, trainingEntries order, training
   * layout): x_t = q_sample(x, t, noise), the official training forward, loss = sum over the shard of the
   * AR-weighted squared error / (batchSize * L * d).
   */
  async lossAndGrads(params: ArrayLike<Float32Array>, shard: TrainingShard): Promise<LossAndGrads> {
    if (params.length !== this.entries.length) throw new Error(`lossAndGrads: ${params.length} parameter arrays for ${this.entries.length} parameters`);
    const geo = derived(this.config);
    const L = geo.numTokens;
    const xt = Float32Array.from(this.diffusion.qSample(shard.x, shard.t, shard.noise));
    const prep = prepareTrainingTokens(
      this.config,
      { x: shard.x, xn: xt, noise: shard.noise, t: shard.t, y: shard.y, splitSizes: shard.splitSizes },
      { idsShuffle: shard.idsShuffle, labelDropRand: shard.labelDropRand },
    );
    const { N, Lc, seqLen } = prep;
    const arWeights = shard.arWeights ?? getArWeights(prep.splitSizes, shard.maxArWeight, shard.minArWeight, 'linear');
    if (arWeights.length !== L) throw new Error(`arWeights has ${arWeights.length} values, expected ${L} (one per token)`);
    const denominator = shard.batchSize * L * geo.tokenDim;
    const weights = Float32Array.from(arWeights, (w) => w / denominator);

    const Tensor = this.ort.Tensor;
    const feeds: Record<string, OrtTensor> = {};
    this.entries.forEach((e, i) => {
      feeds[e.key] = new Tensor('float32', params[i], e.shape);
    });
    feeds[TRAIN_IO.labels] = new Tensor('int64', toInt64(prep.labels), [N]);
    feeds[TRAIN_IO.timestep] = new Tensor('float32', Float32Array.from(shard.t), [N]);
    feeds[TRAIN_IO.noised] = new Tensor('float32', prep.noisedShuf, [N, L, geo.tokenDim]);
    feeds[TRAIN_IO.positions] = new Tensor('int64', toInt64(prep.ids), [N, L]);
    feeds[TRAIN_IO.mask] = new Tensor('float32', prep.maskBias, [seqLen, seqLen]);
    feeds[TRAIN_IO.target] = new Tensor('float32', prep.noiseShuf, [N, L, geo.tokenDim]);
    feeds[TRAIN_IO.weights] = new Tensor('float32', weights, [1, L, 1]);
    if (Lc > 0) {
      feeds[TRAIN_IO.clean] = new Tensor('float32', prep.cleanShuf, [N, Lc, geo.tokenDim]);
      feeds[TRAIN_IO.cleanPositions] = new Tensor('int64', toInt64(prep.cleanPositions), [N, Lc]);
    }
    const session = Lc > 0 ? this.sessions.withClean : this.sessions.withoutClean;
    const out = await session.run(feeds);
    return {
      loss: (out[TRAIN_IO.loss].data as Float32Array)[0],
      grads: this.trainable.map((e) => out[TRAIN_IO.grad(e.key)].data as Float32Array),
    };
  }

  async release(): Promise<void> {
    await this.sessions.withClean.release();
    await this.sessions.withoutClean.release();
  }
}
