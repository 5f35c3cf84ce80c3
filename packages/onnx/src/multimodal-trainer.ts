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
  maskToBias, multimodalGeometry, multimodalParamEntries, textLossMask, textTargets, textToImageMask, validateMultimodalShape,
  type MultimodalModelShape, type MultimodalParamEntry,
} from '@causalfusion/multimodal/layout';
import { checkSplitSizes, getArWeights } from '@causalfusion/sampler';
import { loadOrt } from './engine';
import { toInt64, trainingSessionOptions } from './trainer';
import { buildMultimodalTrainingGraph, MULTIMODAL_TRAIN_IO, type MultimodalGraphVariant } from './multimodal-train-graph';

type Ort = typeof import('onnxruntime-node');
type InferenceSession = import('onnxruntime-node').InferenceSession;
type OrtTensor = import('onnxruntime-node').Tensor;

export interface MultimodalTrainingSessionOptions {
  /** Intra-op threads (default: ORT's choice, one per core). */
  threads?: number;
  /** The diffusion of q_sample (default: createDiffusion({ respacing: '' }), as apps/train). */
  diffusion?: GaussianDiffusion;
}

/**
 * One step's inputs, as `multimodalLosses(model, diffusion, batch, rnd, recipe, nullCaption)` takes them
 * (MultimodalBatch, MultimodalRandomness, MultimodalRecipe of @causalfusion/multimodal fit these shapes).
 */
export interface MultimodalStepInputs {
  batch: {
    /** [N, L, tokenDim] clean image tokens, raster order. */
    tokens: ArrayLike<number>;
    /** [N, T] caption rows. */
    text: ArrayLike<number>;
  };
  rnd: {
    /** [N] 1 = captioning order. */
    caption: ArrayLike<number>;
    /** [N] 1 = caption replaced by the null caption (text-to-image rows only). */
    dropped: ArrayLike<number>;
    /** [N] timesteps (used by text-to-image rows). */
    t: ArrayLike<number>;
    splitSizes: ArrayLike<number>;
    /** [N, L, tokenDim] noise. */
    noise: ArrayLike<number>;
    /** [N, L] per-sample permutations: shuffled position j of sample n holds raster token idsShuffle[n*L + j]. */
    idsShuffle: ArrayLike<number>;
  };
  recipe: { lossLambda: number; maxArWeight: number; minArWeight: number };
  /** [T] the null caption row of CFG-dropped samples. */
  nullCaption: ArrayLike<number>;
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


function checkIds(name: string, ids: ArrayLike<number>, vocab: number): void {
  for (let i = 0; i < ids.length; i++) {
    const v = ids[i];
    if (!Number.isInteger(v) || v < 0 || v >= vocab) throw new RangeError(`${name}: token id ${v} at ${i} is outside the vocabulary 0..${vocab - 1}`);
  }
}

function checkLength(name: string, values: ArrayLike<number> | undefined, expected: number, layout: string): void {
  if (values == null || values.length !== expected) throw new Error(`${name} has ${values == null ? 'no' : values.length} values, expected ${expected} (${layout})`);
}

const variantKey = (v: MultimodalGraphVariant) => `${v.textToImage ? (v.withClean ? 't2i+clean' : 't2i') : ''}|${v.caption ? 'cap' : ''}`;

export class OrtMultimodalTrainingSession {
  /** Every parameter, in the order of `params` and of the gradients. */
  readonly entries: MultimodalParamEntry[];
  private readonly diffusion: GaussianDiffusion;
  /** One session per step shape, built on first use. */
  private readonly sessions = new Map<string, Promise<InferenceSession>>();

  private constructor(
    private readonly ort: Ort,
    readonly config: MultimodalModelShape,
    private readonly sessionOptions: import('onnxruntime-node').InferenceSession.SessionOptions,
    diffusion: GaussianDiffusion | undefined,
  ) {
    this.entries = multimodalParamEntries(config);
    this.diffusion = diffusion ?? createDiffusion({ respacing: '' });
  }

  static async create(config: MultimodalModelShape, options: MultimodalTrainingSessionOptions = {}): Promise<OrtMultimodalTrainingSession> {
    validateMultimodalShape(config);
    const session = new OrtMultimodalTrainingSession(loadOrt(), { ...config }, trainingSessionOptions(options.threads), options.diffusion);
    // the usual step shape (both orders, a clean context) is built now, so its errors surface here
    await session.sessionFor({ textToImage: true, withClean: true, caption: true });
    return session;
  }

  private sessionFor(variant: MultimodalGraphVariant): Promise<InferenceSession> {
    const key = variantKey(variant);
    let s = this.sessions.get(key);
    if (!s) {
      s = this.ort.InferenceSession.create(buildMultimodalTrainingGraph(this.config, variant), this.sessionOptions);
      this.sessions.set(key, s);
    }
    return s;
  }

  /**
   * The loss of `multimodalLosses` for `params` (every parameter, {@link multimodalParamEntries} order,
   * training layout) and the step's inputs, and its gradient with respect to each parameter.
   */
  async lossAndGrads(params: ArrayLike<Float32Array>, step: MultimodalStepInputs): Promise<MultimodalLossAndGrads> {
    const c = this.config;
    const geo = multimodalGeometry(c);
    const L = geo.numTokens;
    const d = geo.tokenDim;
    const T = c.textLength;
    const per = L * d;
    if (params.length !== this.entries.length) throw new Error(`lossAndGrads: ${params.length} parameter arrays for ${this.entries.length} parameters`);
    this.entries.forEach((e, i) => checkLength(`parameter ${e.key}`, params[i], e.shape.reduce((a, b) => a * b, 1), `[${e.shape}]`));
    const { batch, rnd, recipe } = step;
    const N = batch.text.length / T;
    if (!Number.isInteger(N) || N === 0) throw new Error(`batch.text has ${batch.text.length} ids: not whole rows of ${T}`);
    checkIds('batch.text', batch.text, c.vocabSize);
    checkLength('batch.tokens', batch.tokens, N * per, `[N=${N}, L=${L}, tokenDim=${d}]`);
    checkLength('rnd.caption', rnd.caption, N, '[N]');
    checkLength('rnd.dropped', rnd.dropped, N, '[N]');
    checkLength('rnd.t', rnd.t, N, '[N]');
    checkLength('rnd.noise', rnd.noise, N * per, `[N=${N}, L=${L}, tokenDim=${d}]`);
    checkLength('rnd.idsShuffle', rnd.idsShuffle, N * L, `[N=${N}, L=${L}]`);
    checkLength('nullCaption', step.nullCaption, T, `[T=${T}]`);
    checkIds('nullCaption', step.nullCaption, c.vocabSize);

    const io = MULTIMODAL_TRAIN_IO;
    const Tensor = this.ort.Tensor;
    const feeds: Record<string, OrtTensor> = {};
    this.entries.forEach((e, i) => {
      feeds[e.key] = new Tensor('float32', params[i], e.shape);
    });
    const t2i: number[] = [];
    const cap: number[] = [];
    for (let n = 0; n < N; n++) (rnd.caption[n] ? cap : t2i).push(n);
    let textCount = 0;
    let t2iTextMask: Float32Array | null = null;
    let capTextMask: Float32Array | null = null;
    let withClean = false;

    if (t2i.length) {
      const G = t2i.length;
      const splitSizes = Array.from(rnd.splitSizes);
      checkSplitSizes(splitSizes, L);
      const Lc = L - splitSizes[splitSizes.length - 1];
      withClean = Lc > 0;
      const text = new Int32Array(G * T);
      const x = new Float32Array(G * per);
      const noise = new Float32Array(G * per);
      const ids = new Int32Array(G * L);
      const dropped = new Uint8Array(G);
      t2i.forEach((n, i) => {
        dropped[i] = rnd.dropped[n] ? 1 : 0;
        for (let j = 0; j < T; j++) text[i * T + j] = dropped[i] ? step.nullCaption[j] : batch.text[n * T + j];
        for (let k = 0; k < per; k++) {
          x[i * per + k] = batch.tokens[n * per + k];
          noise[i * per + k] = rnd.noise[n * per + k];
        }
        const seen = new Uint8Array(L);
        for (let j = 0; j < L; j++) {
          const q = rnd.idsShuffle[n * L + j];
          if (!Number.isInteger(q) || q < 0 || q >= L || seen[q]) throw new Error(`rnd.idsShuffle row ${n} is not a permutation of 0..${L - 1}`);
          seen[q] = 1;
          ids[i * L + j] = q;
        }
      });
      const t = t2i.map((n) => rnd.t[n]);
      // q_sample per sample, elementwise on the token layout, then the shuffled layout of the sequence
      const xn = Float32Array.from(this.diffusion.qSample(x, t, noise));
      const noisedShuf = new Float32Array(G * per);
      const noiseShuf = new Float32Array(G * per);
      const cleanShuf = new Float32Array(G * Lc * d);
      const cleanPos = new BigInt64Array(G * Lc);
      for (let g = 0; g < G; g++)
        for (let j = 0; j < L; j++) {
          const src = (g * L + ids[g * L + j]) * d;
          noisedShuf.set(xn.subarray(src, src + d), (g * L + j) * d);
          noiseShuf.set(noise.subarray(src, src + d), (g * L + j) * d);
          if (j < Lc) {
            cleanShuf.set(x.subarray(src, src + d), (g * Lc + j) * d);
            cleanPos[g * Lc + j] = BigInt(ids[g * L + j]);
          }
        }
      const S = T + Lc + L;
      const arWeights = getArWeights(splitSizes, recipe.maxArWeight, recipe.minArWeight, 'linear');
      const elements = G * per;
      t2iTextMask = textLossMask(text, T, dropped);
      feeds[io.t2iText] = new Tensor('int64', toInt64(text), [G, T]);
      feeds[io.t2iTimestep] = new Tensor('float32', Float32Array.from(t), [G]);
      feeds[io.t2iNoised] = new Tensor('float32', noisedShuf, [G, L, d]);
      feeds[io.t2iPositions] = new Tensor('int64', toInt64(ids), [G, L]);
      if (withClean) {
        feeds[io.t2iClean] = new Tensor('float32', cleanShuf, [G, Lc, d]);
        feeds[io.t2iCleanPositions] = new Tensor('int64', cleanPos, [G, Lc]);
      }
      feeds[io.t2iMask] = new Tensor('float32', maskToBias(textToImageMask(T, L, splitSizes)), [S, S]);
      feeds[io.t2iTarget] = new Tensor('float32', noiseShuf, [G, L, d]);
      feeds[io.t2iImageWeights] = new Tensor('float32', Float32Array.from(arWeights, (w) => w / elements), [1, L, 1]);
      feeds[io.t2iLabels] = new Tensor('int64', toInt64(textTargets(text, T)), [G, T]);
      feeds[io.lossLambda] = new Tensor('float32', Float32Array.of(recipe.lossLambda), []);
      textCount += t2iTextMask.reduce((a, b) => a + b, 0);
    }
    if (cap.length) {
      const M = cap.length;
      const text = new Int32Array(M * T);
      const image = new Float32Array(M * per);
      cap.forEach((n, i) => {
        for (let j = 0; j < T; j++) text[i * T + j] = batch.text[n * T + j];
        for (let k = 0; k < per; k++) image[i * per + k] = batch.tokens[n * per + k];
      });
      capTextMask = textLossMask(text, T);
      feeds[io.capImage] = new Tensor('float32', image, [M, L, d]);
      feeds[io.capText] = new Tensor('int64', toInt64(text), [M, T]);
      feeds[io.capLabels] = new Tensor('int64', toInt64(textTargets(text, T)), [M, T]);
      textCount += capTextMask.reduce((a, b) => a + b, 0);
    }
    // L_text averages over the masked positions of both orders
    const denominator = Math.max(1, textCount);
    if (t2iTextMask) feeds[io.t2iTextWeights] = new Tensor('float32', t2iTextMask.map((m) => m / denominator), [t2i.length, T]);
    if (capTextMask) feeds[io.capTextWeights] = new Tensor('float32', capTextMask.map((m) => m / denominator), [cap.length, T]);

    const session = await this.sessionFor({ textToImage: t2i.length > 0, withClean, caption: cap.length > 0 });
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
