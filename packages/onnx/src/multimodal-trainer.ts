/**
 * The multimodal training step on onnxruntime-node: loss = L_text + lambda * L_image of
 * @causalfusion/multimodal's `multimodalLosses` and every parameter's gradient, from one `run` of the
 * training graph (./multimodal-train-graph), without tfjs. The inputs are the host-side values the tfjs
 * step consumes: the batch, the step's drawn randomness (`drawMultimodalRandomness`), the recipe's loss
 * coefficients and the null caption. The update (clip, AdamW, EMA) is the caller's, on host arrays.
 *
 * ```ts
 * const session = await OrtMultimodalTrainingSession.create(modelConfig, { threads: 2 });
 * const rnd = drawMultimodalRandomness(rng, N, L, tokenDim, 1000, recipe, modelConfig.captionDropoutProb);
 * const { loss, textLoss, imageLoss, grads } = await session.lossAndGrads(params, { batch, rnd, recipe, nullCaption });
 * ```
 */
import { createDiffusion, type GaussianDiffusion } from '@causalfusion/diffusion';
import {
  checkLength,
  multimodalGeometry,
  multimodalParamEntries,
  prepareMultimodalStep,
  validateMultimodalShape,
  type MultimodalModelShape,
  type MultimodalStepInputs,
  type ParamEntry,
} from '@causalfusion/config';
import { createSession, toInt64, loadOrt, type InferenceSession, type Ort, type OrtTensor } from '@causalfusion/ort';
import { buildMultimodalTrainingGraph, MULTIMODAL_TRAIN_IO, type MultimodalGraphVariant } from './multimodal-train-graph';

export interface MultimodalTrainingSessionOptions {
  /** Intra-op threads (default: ORT's choice, one per core). */
  threads?: number;
  /** The diffusion of q_sample (default: createDiffusion({ respacing: '' }), as apps/train). */
  diffusion?: GaussianDiffusion;
}

export interface MultimodalLossAndGrads {
  /** text + lambda * image. */
  loss: number;
  textLoss: number;
  /** 0 when the batch has no text-to-image rows (as the tfjs loss). */
  imageLoss: number;
  /** One gradient per parameter, in {@link multimodalParamEntries} order (training layout). */
  grads: Float32Array[];
}

const variantKey = (v: MultimodalGraphVariant) => `${v.textToImage ? (v.withClean ? 't2i+clean' : 't2i') : ''}|${v.caption ? 'cap' : ''}`;

export class OrtMultimodalTrainingSession {
  /** Every parameter, in the order of `params` and of the gradients. */
  readonly entries: ParamEntry[];
  private readonly diffusion: GaussianDiffusion;
  /** One session per step shape, built on first use. */
  private readonly sessions = new Map<string, Promise<InferenceSession>>();

  private constructor(
    private readonly ort: Ort,
    readonly config: MultimodalModelShape,
    private readonly threads: number | undefined,
    diffusion: GaussianDiffusion | undefined,
  ) {
    this.entries = multimodalParamEntries(config);
    this.diffusion = diffusion ?? createDiffusion({ respacing: '' });
  }

  static async create(config: MultimodalModelShape, options: MultimodalTrainingSessionOptions = {}): Promise<OrtMultimodalTrainingSession> {
    validateMultimodalShape(config);
    const session = new OrtMultimodalTrainingSession(loadOrt(), { ...config }, options.threads, options.diffusion);
    // the usual step shape (both orders, a clean context) is built now, so its errors surface here
    await session.sessionFor({ textToImage: true, withClean: true, caption: true });
    return session;
  }

  private sessionFor(variant: MultimodalGraphVariant): Promise<InferenceSession> {
    const key = variantKey(variant);
    let s = this.sessions.get(key);
    if (!s) {
      s = createSession(buildMultimodalTrainingGraph(this.config, variant), { purpose: 'training', threads: this.threads });
      this.sessions.set(key, s);
    }
    return s;
  }

  /**
   * The loss of `multimodalLosses` for `params` (every parameter, {@link multimodalParamEntries} order,
   * training layout) and the step's inputs, and its gradient with respect to each parameter.
   */
  async lossAndGrads(params: ArrayLike<Float32Array>, step: MultimodalStepInputs): Promise<MultimodalLossAndGrads> {
    if (params.length !== this.entries.length) throw new Error(`lossAndGrads: ${params.length} parameter arrays for ${this.entries.length} parameters`);
    this.entries.forEach((e, i) =>
      checkLength(
        `parameter ${e.key}`,
        params[i],
        e.shape.reduce((a, b) => a * b, 1),
        `[${e.shape}]`,
      ),
    );
    // the host half (both orders' rows, q_sample, the layout, loss masks and weights): @causalfusion/config
    const prep = prepareMultimodalStep(this.config, (x, t, noise) => this.diffusion.qSample(x, t, noise), step);
    const { numTokens: L, tokenDim: d } = multimodalGeometry(this.config);
    const Lt = this.config.textLength;

    const io = MULTIMODAL_TRAIN_IO;
    const Tensor = this.ort.Tensor;
    const feeds: Record<string, OrtTensor> = {};
    this.entries.forEach((e, i) => {
      feeds[e.key] = new Tensor('float32', params[i], e.shape);
    });
    const t2i = prep.textToImage;
    if (t2i) {
      const { N: G, Lc, seqLen } = t2i;
      feeds[io.t2iText] = new Tensor('int64', toInt64(t2i.text), [G, Lt]);
      feeds[io.t2iTimestep] = new Tensor('float32', t2i.t, [G]);
      feeds[io.t2iNoised] = new Tensor('float32', t2i.noisedShuf, [G, L, d]);
      feeds[io.t2iPositions] = new Tensor('int64', toInt64(t2i.ids), [G, L]);
      if (Lc > 0) {
        feeds[io.t2iClean] = new Tensor('float32', t2i.cleanShuf, [G, Lc, d]);
        feeds[io.t2iCleanPositions] = new Tensor('int64', toInt64(t2i.cleanPositions), [G, Lc]);
      }
      feeds[io.t2iMask] = new Tensor('float32', t2i.maskBias, [seqLen, seqLen]);
      feeds[io.t2iTarget] = new Tensor('float32', t2i.noiseShuf, [G, L, d]);
      // the image loss is a mean over the text-to-image rows' elements: fold it into the weights
      feeds[io.t2iImageWeights] = new Tensor(
        'float32',
        Float32Array.from(t2i.imageWeights, (w) => w / (G * L * d)),
        [G, L, 1],
      );
      feeds[io.t2iLabels] = new Tensor('int64', toInt64(t2i.targets), [G, Lt]);
      feeds[io.t2iTextWeights] = new Tensor(
        'float32',
        t2i.textMask.map((m) => m / prep.textCount),
        [G, Lt],
      );
      feeds[io.lossLambda] = new Tensor('float32', Float32Array.of(step.recipe.lossLambda), []);
    }
    const cap = prep.caption;
    if (cap) {
      feeds[io.capImage] = new Tensor('float32', cap.image, [cap.M, L, d]);
      feeds[io.capText] = new Tensor('int64', toInt64(cap.text), [cap.M, Lt]);
      feeds[io.capLabels] = new Tensor('int64', toInt64(cap.targets), [cap.M, Lt]);
      // L_text averages over the masked positions of both orders
      feeds[io.capTextWeights] = new Tensor(
        'float32',
        cap.textMask.map((m) => m / prep.textCount),
        [cap.M, Lt],
      );
    }

    const session = await this.sessionFor({ textToImage: t2i !== null, withClean: t2i !== null && t2i.Lc > 0, caption: cap !== null });
    const out = await session.run(feeds);
    const scalar = (name: string) => (out[name] ? (out[name].data as Float32Array)[0] : 0);
    return {
      loss: scalar(io.loss),
      textLoss: scalar(io.textLoss),
      imageLoss: scalar(io.imageLoss),
      // a captioning-only step does not reach the timestep embedder and the eps head: zero gradients
      grads: this.entries.map((e) => {
        const g = out[io.grad(e.key)];
        return g ? (g.data as Float32Array) : new Float32Array(e.shape.reduce((a, b) => a * b, 1));
      }),
    };
  }

  async release(): Promise<void> {
    const sessions = await Promise.all(this.sessions.values());
    this.sessions.clear();
    for (const s of sessions) await s.release();
  }
}
