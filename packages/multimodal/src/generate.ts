/**
 * Inference in both directions, over the model's KV cache:
 * - captioning: push the image (clean), then <|bos|>, then each chosen token; every push returns the
 *   next-token logits. Greedy, or sampled with temperature / top-k / top-p from a seeded generator.
 * - text-to-image: the caption row is the condition. `CaptionDenoiser` is a `Denoiser` for
 *   @causalfusion/sampler's `sample()`: start() pushes the caption rows (a null caption for CFG's
 *   unconditional rows), pushClean / predictEps are the model's image push and eps prediction.
 */
import { createDiffusion } from '@causalfusion/diffusion';
import { createRng, type Rng } from '@causalfusion/rng';
import { sample, type Denoiser, type DenoiserSession, type Intermediate, type OrderName, type SampleProgress } from '@causalfusion/sampler';
import type { MultimodalModel } from './model';
import { BOS_ID, EOS_ID, PAD_ID } from '@causalfusion/config';
import type { CaptionCodec } from './text';

export interface DecodeOptions {
  /** Pick the most likely token (default when none of temperature / topK / topP is given). */
  greedy?: boolean;
  /** Softmax temperature (> 0), default 1. */
  temperature?: number;
  /** Keep only the k most likely tokens (0 or undefined: all). */
  topK?: number;
  /** Keep the smallest set of most likely tokens whose probability reaches p (1: all). */
  topP?: number;
}

/** Check decoding options; RangeError naming the bad one. */
export function checkDecodeOptions(o: DecodeOptions): void {
  if (o.temperature !== undefined && !(o.temperature > 0)) throw new RangeError(`temperature must be > 0, got ${o.temperature}`);
  if (o.topK !== undefined && !(Number.isInteger(o.topK) && o.topK >= 0)) throw new RangeError(`top-k must be an integer >= 0, got ${o.topK}`);
  if (o.topP !== undefined && !(o.topP > 0 && o.topP <= 1)) throw new RangeError(`top-p must be in (0, 1], got ${o.topP}`);
}

/**
 * Choose a token from one row of logits. <|pad|> and <|bos|> are never chosen (they are never targets).
 * Sampling: logits / temperature, then top-k, then top-p (nucleus), then one categorical draw from `rng`.
 */
export function pickToken(logits: ArrayLike<number>, options: DecodeOptions, rng: Rng | null): number {
  checkDecodeOptions(options);
  const V = logits.length;
  const allowed = (i: number) => i !== PAD_ID && i !== BOS_ID;
  const sampling = !options.greedy && (options.temperature !== undefined || options.topK || (options.topP !== undefined && options.topP < 1));
  if (!sampling) {
    let best = -1;
    for (let i = 0; i < V; i++) if (allowed(i) && (best < 0 || logits[i] > logits[best])) best = i;
    return best;
  }
  if (!rng) throw new Error('pickToken: sampling needs a random generator');
  const temperature = options.temperature ?? 1;
  const order = [...Array(V).keys()].filter(allowed).sort((a, b) => logits[b] - logits[a] || a - b);
  const kept = options.topK ? order.slice(0, options.topK) : order;
  const max = logits[kept[0]] / temperature;
  let probs = kept.map((i) => Math.exp(logits[i] / temperature - max));
  const sum = probs.reduce((a, b) => a + b, 0);
  probs = probs.map((p) => p / sum);
  let n = probs.length;
  if (options.topP !== undefined && options.topP < 1) {
    let acc = 0;
    for (n = 0; n < probs.length;) {
      acc += probs[n++];
      if (acc >= options.topP) break;
    }
  }
  return kept[rng.categorical(probs.slice(0, n))];
}

export interface CaptionOptions extends DecodeOptions {
  /** Seed of the sampling draws (default 0). */
  seed?: number;
  /** Most tokens to generate (default: what the text layout holds, textLength - 1). */
  maxTokens?: number;
}

/**
 * Caption `count` images given as clean tokens [count, L, tokenDim] (raster, [-1, 1]). Returns the token
 * ids of each caption (without <|bos|>; ending with <|eos|> when the model ended it) and the text.
 */
export function generateCaptions(
  model: MultimodalModel,
  codec: CaptionCodec,
  tokens: ArrayLike<number>,
  count: number,
  options: CaptionOptions = {},
): { ids: number[][]; texts: string[] } {
  checkDecodeOptions(options);
  const L = model.numTokens;
  const Lt = model.config.textLength;
  const maxTokens = Math.min(options.maxTokens ?? Lt - 1, Lt - 1);
  const rng = createRng(options.seed ?? 0);
  const cache = model.createCache(count);
  const ids: number[][] = Array.from({ length: count }, () => []);
  try {
    const positions = Int32Array.from({ length: count * L }, (_, i) => i % L);
    model.pushClean(cache, tokens, positions, L);
    let current = new Int32Array(count).fill(BOS_ID);
    const done = new Uint8Array(count);
    for (let j = 0; j < maxTokens && !done.every(Boolean); j++) {
      const logits = model.pushText(cache, current, j, 1, { logits: true })!;
      const V = logits.length / count;
      const next = new Int32Array(count);
      for (let r = 0; r < count; r++) {
        // a finished row keeps pushing pads, as in training (pads after <|eos|>); its logits are unused
        if (done[r]) {
          next[r] = PAD_ID;
          continue;
        }
        next[r] = pickToken(logits.subarray(r * V, (r + 1) * V), options, rng);
        ids[r].push(next[r]);
        if (next[r] === EOS_ID) done[r] = 1;
      }
      current = next;
    }
  } finally {
    cache.dispose();
  }
  return { ids, texts: ids.map((row) => codec.decode(row)) };
}

/** A `Denoiser` whose conditions are caption rows ([textLength] ids); `null` is the null caption. */
export class CaptionDenoiser implements Denoiser<Int32Array> {
  readonly numTokens: number;
  readonly tokenDim: number;

  constructor(
    readonly model: MultimodalModel,
    readonly nullCaption: Int32Array,
  ) {
    this.numTokens = model.numTokens;
    this.tokenDim = model.tokenDim;
  }

  start(conditions: ReadonlyArray<Int32Array | null>): DenoiserSession {
    const Lt = this.model.config.textLength;
    const rows = new Int32Array(conditions.length * Lt);
    conditions.forEach((c, i) => rows.set(c ?? this.nullCaption, i * Lt));
    const cache = this.model.createCache(conditions.length);
    this.model.pushText(cache, rows, 0, Lt);
    return {
      pushClean: (tokens, positions, count) => this.model.pushClean(cache, tokens, positions, count),
      predictEps: (noised, positions, count, timestep) => this.model.predictEps(cache, noised, positions, count, timestep),
      dispose: () => cache.dispose(),
    };
  }
}

export interface GenerateImageOptions {
  /** S_eval: AR steps (default 1 = plain diffusion). */
  arSteps?: number;
  /** Classifier-free guidance scale (default 1: off). */
  cfgScale?: number;
  /** Respaced diffusion steps per AR step (default 50). */
  steps?: number;
  /** Each diffusion step's update: ancestral DDPM (default) or deterministic DDIM (eta 0). */
  sampler?: 'ddpm' | 'ddim';
  order?: OrderName;
  seed?: number;
  /** Hears each AR step's frame as it finishes: the finished tokens and that step's x0 estimate, [N, L, tokenDim]. */
  onArStep?: (frame: Intermediate) => void;
  /** Called after each diffusion step (a returned promise is awaited before the next one). */
  onProgress?: (progress: SampleProgress) => unknown;
  /** Stops the sampling before its next diffusion step once aborted (the sampler throws the signal's reason). */
  signal?: AbortSignal;
}

/** Images for caption rows (one image per row): tokens [N, L, tokenDim] in raster order, in [-1, 1]. */
export async function generateImages(
  model: MultimodalModel,
  codec: CaptionCodec,
  captions: Int32Array[],
  options: GenerateImageOptions = {},
): Promise<Float32Array> {
  const diffusion = createDiffusion({ respacing: String(options.steps ?? 50) });
  const { tokens } = await sample(new CaptionDenoiser(model, codec.nullCaption()), {
    conditions: captions,
    arSteps: options.arSteps ?? 1,
    cfgScale: options.cfgScale ?? 1,
    diffusion,
    method: options.sampler ?? 'ddpm',
    order: options.order ?? 'raster',
    grid: [model.gridH, model.gridW],
    seed: options.seed ?? 0,
    clipDenoised: true, // pixels live in [-1, 1]
    // one frame per AR step: recorded at its last diffusion step
    intermediates: options.onArStep ? { every: diffusion.samplingTimesteps().length } : false,
    onIntermediate: options.onArStep,
    onProgress: options.onProgress,
    signal: options.signal,
  });
  return tokens;
}
