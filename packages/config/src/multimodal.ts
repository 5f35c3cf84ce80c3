/**
 * The multimodal model's framework-free rules (one decoder-only transformer over text and image tokens, the
 * paper's Table 6a; the tfjs model is @causalfusion/multimodal's, the ONNX training graphs
 * @causalfusion/onnx's): its config (config.json of a model folder) and geometry, the caption rows' special
 * ids, the parameters, the two attention masks and the text loss's mask and next-token targets.
 */
import type { Rng } from '@causalfusion/rng';
import { checkSplitSizes, getArWeights, getAttnMask, splitIntegerExpDecay } from '@causalfusion/sampler';
import { MULTIMODAL_KEYS as K, ParamTable, type ParamEntry } from './layers';
import { checkLength, checkPermutations, maskToBias, shuffledPositions, shuffleTokens } from './tokens';

/** The fields that fix the network and its parameters: a {@link MultimodalConfig} without the training-only caption dropout. */
export interface MultimodalModelShape {
  /** Canvas in pixels (gray); patches of patchSize x patchSize become image tokens, raster order. */
  imageHeight: number;
  imageWidth: number;
  channels: number;
  patchSize: number;
  /** Text: ids per caption row (bos + caption + eos + pads) and the tokenizer's vocabulary size. */
  textLength: number;
  vocabSize: number;
  hiddenSize: number;
  depth: number;
  numHeads: number;
  mlpRatio: number;
}

export interface MultimodalConfig extends MultimodalModelShape {
  /** Probability that a text-to-image sample's caption is replaced by the null caption (for CFG). */
  captionDropoutProb: number;
}

/** The `format` of a multimodal model's config.json. */
export const MULTIMODAL_CONFIG_FORMAT = 'causalfusion-multimodal';

/** Quantities that follow from a config. */
export function multimodalGeometry(c: MultimodalModelShape) {
  const gridH = c.imageHeight / c.patchSize;
  const gridW = c.imageWidth / c.patchSize;
  return {
    gridH,
    gridW,
    /** L: image tokens. */
    numTokens: gridH * gridW,
    tokenDim: c.patchSize * c.patchSize * c.channels,
    headDim: c.hiddenSize / c.numHeads,
    mlpHidden: Math.floor(c.hiddenSize * c.mlpRatio),
  };
}

/** Throws an Error naming the first inconsistent field of the network's shape. */
export function validateMultimodalShape(c: MultimodalModelShape): void {
  for (const k of ['imageHeight', 'imageWidth', 'channels', 'patchSize', 'textLength', 'vocabSize', 'hiddenSize', 'depth', 'numHeads'] as const) {
    const v = c[k];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) throw new Error(`multimodal config: ${k} must be a positive integer, got ${String(v)}`);
  }
  if (c.imageHeight % c.patchSize || c.imageWidth % c.patchSize) {
    throw new Error(`multimodal config: patchSize ${c.patchSize} must divide the canvas ${c.imageHeight}x${c.imageWidth}`);
  }
  if (c.hiddenSize % c.numHeads) throw new Error(`multimodal config: hiddenSize ${c.hiddenSize} is not divisible by numHeads ${c.numHeads}`);
  if (c.hiddenSize % 4) throw new Error(`multimodal config: hiddenSize ${c.hiddenSize} must be a multiple of 4 (2-D sin-cos positions)`);
  if (c.textLength < 3) throw new Error(`multimodal config: textLength must hold <|bos|>, a token and <|eos|>, got ${c.textLength}`);
  if (!(c.mlpRatio > 0)) throw new Error(`multimodal config: mlpRatio must be positive, got ${c.mlpRatio}`);
}

/** Throws an Error naming the first inconsistent field: the shape's rules, then the caption dropout's. */
export function validateMultimodalConfig(c: MultimodalConfig): void {
  validateMultimodalShape(c);
  if (!(c.captionDropoutProb >= 0 && c.captionDropoutProb < 1)) {
    throw new Error(`multimodal config: captionDropoutProb must be in [0, 1), got ${c.captionDropoutProb}`);
  }
}

export function multimodalConfigToJson(c: MultimodalConfig): Record<string, unknown> {
  return { format: MULTIMODAL_CONFIG_FORMAT, ...c };
}

export function multimodalConfigFromJson(json: unknown, where = 'config.json'): MultimodalConfig {
  if (json === null || typeof json !== 'object' || Array.isArray(json)) throw new Error(`${where}: expected a JSON object`);
  const { format, ...rest } = json as Record<string, unknown>;
  if (format !== MULTIMODAL_CONFIG_FORMAT) {
    throw new Error(`${where} is not a multimodal model config (format ${JSON.stringify(format)}, expected "${MULTIMODAL_CONFIG_FORMAT}")`);
  }
  const config = rest as unknown as MultimodalConfig;
  try {
    validateMultimodalConfig(config);
  } catch (e) {
    throw new Error(`${where}: ${(e as Error).message}`);
  }
  return config;
}

/** The caption rows' special ids (the tokenizer's <|pad|>, <|bos|>, <|eos|>). */
export const PAD_ID = 0;
export const BOS_ID = 1;
export const EOS_ID = 2;

/**
 * The parameters in state-dict order (./layers): the text tables, the image position table (2-D sin-cos at
 * init), the transformer body, the eps head and the LM head. Every parameter trains; model.safetensors
 * stores nn.Linear weights [out, in] and every other tensor in its training shape.
 */
export function multimodalParamEntries(config: MultimodalModelShape): ParamEntry[] {
  const g = multimodalGeometry(config);
  const D = config.hiddenSize;
  return new ParamTable()
    .tensor(K.textEmbed, [config.vocabSize, D], 'normal')
    .tensor(K.textPos, [config.textLength, D], 'normal')
    .tensor(K.imagePos, [g.numTokens, D], 'sincos', { grid: { height: g.gridH, width: g.gridW } })
    .tokenAndTimestepEmbedders(g.tokenDim, D)
    .blocks(config.depth, { hiddenSize: D, headDim: g.headDim, mlpHidden: g.mlpHidden })
    .finalLayer(D, g.tokenDim)
    .norm(K.lmNorm, D)
    .linear(K.lmLinear, D, config.vocabSize).entries;
}

/**
 * The text-to-image mask (1 = masked; row = query, column = key) of [text Lt | clean Lc | noised L]:
 * CausalFusion's generalized causal mask with the text as cond tokens, made causal inside the text.
 */
export function textToImageMask(textLength: number, numTokens: number, splitSizes: ArrayLike<number>): Uint8Array {
  const mask = getAttnMask(numTokens, textLength, splitSizes);
  const seqLen = Math.sqrt(mask.length);
  for (let r = 0; r < textLength; r++) for (let c = r + 1; c < textLength; c++) mask[r * seqLen + c] = 1;
  return mask;
}

/** The captioning mask of [image L | text Lt]: the image sees itself; text sees the image and earlier text. */
export function captionMask(numTokens: number, textLength: number): Uint8Array {
  const seqLen = numTokens + textLength;
  const mask = new Uint8Array(seqLen * seqLen).fill(1);
  for (let r = 0; r < seqLen; r++) mask.fill(0, r * seqLen, r * seqLen + (r < numTokens ? numTokens : r + 1));
  return mask;
}

/**
 * Which text positions get a loss: position j predicts id j+1, and counts while j+1 is a caption token or
 * the <|eos|>. Rows whose `dropped` flag is set (CFG-dropped captions) get none. [N, Lt] of 0 / 1.
 */
export function textLossMask(text: ArrayLike<number>, textLength: number, dropped?: ArrayLike<boolean | number>): Float32Array {
  const N = text.length / textLength;
  const mask = new Float32Array(text.length);
  for (let n = 0; n < N; n++) {
    if (dropped && dropped[n]) continue;
    for (let j = 0; j + 1 < textLength; j++) {
      const next = text[n * textLength + j + 1];
      if (next === PAD_ID || next === BOS_ID) break;
      mask[n * textLength + j] = 1;
      if (next === EOS_ID) break;
    }
  }
  return mask;
}

/** Next-token targets of caption rows: row shifted left by one (the last position's target is a pad). */
export function textTargets(text: ArrayLike<number>, textLength: number): Int32Array {
  const out = new Int32Array(text.length);
  for (let i = 0; i < text.length; i++) out[i] = (i + 1) % textLength === 0 ? PAD_ID : text[i + 1];
  return out;
}

/** `ids` as checked token ids of the vocabulary (`expected` of them). */
export function checkTextIds(name: string, ids: ArrayLike<number>, expected: number, vocabSize: number): Int32Array {
  if (ids.length !== expected) throw new Error(`${name} has ${ids.length} ids, expected ${expected}`);
  const out = new Int32Array(expected);
  for (let i = 0; i < expected; i++) {
    const v = ids[i];
    if (!Number.isInteger(v) || v < 0 || v >= vocabSize) throw new RangeError(`${name}: token id ${v} at ${i} is outside the vocabulary 0..${vocabSize - 1}`);
    out[i] = v;
  }
  return out;
}

// ------------------------------------------------------------------ one training step, before any tensor

/** Text-to-image inputs of N samples. Image tokens are [N, L, d] in raster order. */
export interface TextToImageInputs {
  /** [N, textLength] caption rows as fed (a dropped caption is the null caption). */
  text: ArrayLike<number>;
  /** Clean tokens x0. */
  x: ArrayLike<number>;
  /** Noised tokens x_t. */
  xn: ArrayLike<number>;
  /** The noise of x_t (the eps target), when a loss is to be computed. */
  noise?: ArrayLike<number>;
  /** [N] original timesteps. */
  t: ArrayLike<number>;
  /** AR step sizes, shared by the group. */
  splitSizes: ArrayLike<number>;
  /** [N, L]: shuffled position j of sample n holds raster token idsShuffle[n*L + j] (default: raster). */
  idsShuffle?: ArrayLike<number>;
}

/** The sequence [text | clean Lc | noised L] of text-to-image samples, laid out for a tensor forward. */
export interface TextToImageTokens {
  N: number;
  /** Context tokens (clean copies of all but the last AR step), and the sequence length textLength + Lc + L. */
  Lc: number;
  seqLen: number;
  splitSizes: number[];
  /** [N, textLength] checked ids. */
  text: Int32Array;
  /** [N] timesteps. */
  t: Float32Array;
  /** [N, L] the permutation; x_t shuffled [N, L, d]; the clean context [N, Lc, d] and its raster positions [N, Lc]. */
  ids: Int32Array;
  noisedShuf: Float32Array;
  cleanShuf: Float32Array;
  cleanPositions: Int32Array;
  /** [N, L, d] the noise shuffled (the eps target), when given. */
  noiseShuf: Float32Array | null;
  /** [seqLen, seqLen] {@link textToImageMask} as an additive bias. */
  maskBias: Float32Array;
}

/** Check text-to-image inputs and lay out their sequence (the framework-free half of the text-to-image forward). */
export function prepareTextToImageTokens(config: MultimodalModelShape, inputs: TextToImageInputs): TextToImageTokens {
  const g = multimodalGeometry(config);
  const N = inputs.t.length;
  const L = g.numTokens;
  const d = g.tokenDim;
  const Lt = config.textLength;
  if (N === 0) throw new Error('text-to-image: the group is empty');
  const text = checkTextIds('text', inputs.text, N * Lt, config.vocabSize);
  const layout = `[N=${N}, L=${L}, tokenDim=${d}]`;
  checkLength('x', inputs.x, N * L * d, layout);
  checkLength('xn', inputs.xn, N * L * d, layout);
  if (inputs.noise) checkLength('noise', inputs.noise, N * L * d, layout);
  const splitSizes = Array.from(inputs.splitSizes);
  checkSplitSizes(splitSizes, L);
  const Lc = L - splitSizes[splitSizes.length - 1];
  const ids = checkPermutations('idsShuffle', inputs.idsShuffle, N, L);
  return {
    N,
    Lc,
    seqLen: Lt + Lc + L,
    splitSizes,
    text,
    t: Float32Array.from(inputs.t),
    ids,
    noisedShuf: shuffleTokens(inputs.xn, ids, N, L, d),
    cleanShuf: shuffleTokens(inputs.x, ids, N, L, d, Lc),
    cleanPositions: shuffledPositions(ids, N, L, Lc),
    noiseShuf: inputs.noise ? shuffleTokens(inputs.noise, ids, N, L, d) : null,
    maskBias: maskToBias(textToImageMask(Lt, L, splitSizes)),
  };
}

export interface MultimodalRecipe {
  /** lambda: weight of the image (diffusion) loss against the text loss (Transfusion uses 5). */
  lossLambda: number;
  /** Probability that a sample is trained in the captioning order [image | text]. */
  captionProb: number;
  /** AR-step decay of the split sizes; maxArSteps caps the number of AR steps (1 = plain diffusion, Transfusion-style). */
  arStepDecay: number;
  maxArSteps: number;
  maxArWeight: number;
  minArWeight: number;
  /** `random`: a fresh token permutation per text-to-image sample (the official recipe); `raster`: none. */
  order: 'random' | 'raster';
  /**
   * Extra image-loss weight of foreground tokens (a clean token with any value above the background -1):
   * such a token weighs 1 + foregroundWeight, a background token 1, renormalised to a mean of 1 over the
   * step's text-to-image tokens. 0 (the official recipe) weighs every token alike; on a canvas with empty
   * regions a positive value keeps the eps-MSE of the blank tokens from diluting what the caption controls.
   */
  foregroundWeight: number;
}

export const DEFAULT_RECIPE: MultimodalRecipe = {
  lossLambda: 5,
  captionProb: 0.5,
  arStepDecay: 0.9,
  maxArSteps: Infinity,
  maxArWeight: 2,
  minArWeight: 1,
  order: 'random',
  foregroundWeight: 0,
};

/** One training batch: per sample an image (tokens, raster) and one caption row. */
export interface MultimodalBatch {
  /** [N, L, d] clean image tokens in [-1, 1]. */
  tokens: ArrayLike<number>;
  /** [N, textLength] caption rows. */
  text: ArrayLike<number>;
}

/** Every random draw of one step (drawn by {@link drawMultimodalRandomness}). */
export interface MultimodalRandomness {
  /** [N] 1 = captioning order. */
  caption: ArrayLike<number>;
  /** [N] 1 = caption replaced by the null caption (text-to-image samples only). */
  dropped: ArrayLike<number>;
  /** [N] timesteps (used by text-to-image samples). */
  t: ArrayLike<number>;
  splitSizes: ArrayLike<number>;
  /** [N, L, d] noise. */
  noise: ArrayLike<number>;
  /** [N, L] per-sample permutations. */
  idsShuffle: ArrayLike<number>;
}

/** The draws of one step from `rng`: order, caption dropout, timesteps, the AR split, noise, permutations. */
export function drawMultimodalRandomness(
  rng: Rng,
  N: number,
  L: number,
  tokenDim: number,
  numTimesteps: number,
  recipe: MultimodalRecipe,
  captionDropoutProb: number,
): { caption: Uint8Array; dropped: Uint8Array; t: Int32Array; splitSizes: number[]; noise: Float32Array; idsShuffle: Int32Array } {
  const caption = Uint8Array.from({ length: N }, () => (rng.uniform() < recipe.captionProb ? 1 : 0));
  const dropped = Uint8Array.from({ length: N }, (_, n) => (!caption[n] && rng.uniform() < captionDropoutProb ? 1 : 0));
  const t = Int32Array.from({ length: N }, () => rng.uniformInt(numTimesteps));
  const splitSizes = splitIntegerExpDecay(L, recipe.arStepDecay, rng);
  const noise = new Float32Array(N * L * tokenDim);
  rng.fillNormal(noise);
  const idsShuffle = new Int32Array(N * L);
  for (let n = 0; n < N; n++) {
    if (recipe.order === 'random') idsShuffle.set(rng.permutation(L), n * L);
    else for (let j = 0; j < L; j++) idsShuffle[n * L + j] = j;
  }
  return { caption, dropped, t, splitSizes: capArSteps(splitSizes, recipe.maxArSteps), noise, idsShuffle };
}

/** Merge the last AR steps until at most `maxSteps` remain (maxSteps 1: plain diffusion over all tokens). */
export function capArSteps(splitSizes: number[], maxSteps: number): number[] {
  if (!(maxSteps >= 1)) throw new RangeError(`maxArSteps must be >= 1, got ${maxSteps}`);
  if (splitSizes.length <= maxSteps) return splitSizes;
  const head = splitSizes.slice(0, maxSteps - 1);
  const tail = splitSizes.slice(maxSteps - 1).reduce((a, b) => a + b, 0);
  return [...head, tail];
}

/** The recipe's fields a step's loss depends on (foregroundWeight may be left out: 0). */
export type MultimodalLossRecipe = Pick<MultimodalRecipe, 'lossLambda' | 'maxArWeight' | 'minArWeight'> & Partial<Pick<MultimodalRecipe, 'foregroundWeight'>>;

/** One step's inputs: the batch, its drawn randomness, the loss coefficients and the null caption. */
export interface MultimodalStepInputs {
  batch: MultimodalBatch;
  rnd: MultimodalRandomness;
  recipe: MultimodalLossRecipe;
  /** [textLength] the null caption row of CFG-dropped samples. */
  nullCaption: ArrayLike<number>;
}

/** What a runtime computes a step's loss from: both orders' rows, laid out, with the loss weights. */
export interface MultimodalStepTokens {
  /**
   * Text-to-image rows (G of them), with the image loss weights [G, L] (shuffled order: the AR weight of the
   * token's step times its foreground factor) and the text loss mask / targets [G, textLength].
   */
  textToImage:
    (TextToImageTokens & { rows: number[]; noiseShuf: Float32Array; imageWeights: Float32Array; textMask: Float32Array; targets: Int32Array }) | null;
  /** Captioning rows (M of them): clean image tokens [M, L, d] (raster), caption rows, text loss mask and targets. */
  caption: { rows: number[]; M: number; image: Float32Array; text: Int32Array; textMask: Float32Array; targets: Int32Array } | null;
  /** Positions that get a text loss, over both orders (L_text averages over them; at least 1). */
  textCount: number;
}

/**
 * The framework-free half of a multimodal training step: split the batch by order, replace dropped
 * captions by the null caption, q_sample the text-to-image rows (`qSample`: GaussianDiffusion's) and lay out
 * both orders' sequences, loss masks and targets. The tfjs loss and the ONNX training graph start here.
 */
export function prepareMultimodalStep(
  config: MultimodalModelShape,
  qSample: (x: ArrayLike<number>, t: ArrayLike<number>, noise: ArrayLike<number>) => ArrayLike<number>,
  step: MultimodalStepInputs,
): MultimodalStepTokens {
  const g = multimodalGeometry(config);
  const L = g.numTokens;
  const d = g.tokenDim;
  const Lt = config.textLength;
  const per = L * d;
  const { batch, rnd, recipe } = step;
  const N = batch.text.length / Lt;
  if (!Number.isInteger(N) || N === 0) throw new Error(`batch.text has ${batch.text.length} ids: not whole rows of ${Lt}`);
  const allText = checkTextIds('batch.text', batch.text, N * Lt, config.vocabSize);
  checkLength('batch.tokens', batch.tokens, N * per, `[N=${N}, L=${L}, tokenDim=${d}]`);
  checkLength('rnd.caption', rnd.caption, N, '[N]');
  checkLength('rnd.dropped', rnd.dropped, N, '[N]');
  checkLength('rnd.t', rnd.t, N, '[N]');
  checkLength('rnd.noise', rnd.noise, N * per, `[N=${N}, L=${L}, tokenDim=${d}]`);
  checkLength('rnd.idsShuffle', rnd.idsShuffle, N * L, `[N=${N}, L=${L}]`);
  const nullCaption = checkTextIds('nullCaption', step.nullCaption, Lt, config.vocabSize);
  const rowsOf = (rows: number[], data: ArrayLike<number>, width: number, out: Float32Array | Int32Array) => {
    rows.forEach((n, i) => {
      for (let k = 0; k < width; k++) out[i * width + k] = data[n * width + k];
    });
    return out;
  };
  const t2i: number[] = [];
  const cap: number[] = [];
  for (let n = 0; n < N; n++) (rnd.caption[n] ? cap : t2i).push(n);
  let textCount = 0;

  let textToImage: MultimodalStepTokens['textToImage'] = null;
  if (t2i.length) {
    const G = t2i.length;
    const text = new Int32Array(G * Lt);
    const dropped = Uint8Array.from(t2i, (n) => (rnd.dropped[n] ? 1 : 0));
    t2i.forEach((n, i) => text.set(dropped[i] ? nullCaption : allText.subarray(n * Lt, (n + 1) * Lt), i * Lt));
    const x = rowsOf(t2i, batch.tokens, per, new Float32Array(G * per)) as Float32Array;
    const noise = rowsOf(t2i, rnd.noise, per, new Float32Array(G * per)) as Float32Array;
    const t = t2i.map((n) => rnd.t[n]);
    // q_sample per sample, elementwise on the token layout (the layout does not matter for q_sample)
    const xn = Float32Array.from(qSample(x, t, noise));
    const ids = rowsOf(t2i, rnd.idsShuffle, L, new Int32Array(G * L));
    const tokens = prepareTextToImageTokens(config, { text, x, xn, noise, t, splitSizes: rnd.splitSizes, idsShuffle: ids });
    const textMask = textLossMask(text, Lt, dropped);
    textCount += textMask.reduce((a, b) => a + b, 0);
    textToImage = {
      ...tokens,
      rows: t2i,
      noiseShuf: tokens.noiseShuf!,
      textMask,
      targets: textTargets(text, Lt),
      imageWeights: imageLossWeights(
        getArWeights(tokens.splitSizes, recipe.maxArWeight, recipe.minArWeight, 'linear'),
        recipe.foregroundWeight ?? 0,
        x,
        ids,
        G,
        L,
        d,
      ),
    };
  }
  let caption: MultimodalStepTokens['caption'] = null;
  if (cap.length) {
    const M = cap.length;
    const text = rowsOf(cap, allText, Lt, new Int32Array(M * Lt)) as Int32Array;
    const textMask = textLossMask(text, Lt);
    textCount += textMask.reduce((a, b) => a + b, 0);
    caption = {
      rows: cap,
      M,
      image: rowsOf(cap, batch.tokens, per, new Float32Array(M * per)) as Float32Array,
      text,
      textMask,
      targets: textTargets(text, Lt),
    };
  }
  return { textToImage, caption, textCount: Math.max(1, textCount) };
}

/** Image values at or below this are background (a 0 pixel is -1; the margin absorbs rounding). */
const BACKGROUND_LEVEL = -1 + 1e-3;

/**
 * Per-token image loss weights [G, L] in shuffled order: arWeights[j] times (1 + foregroundWeight) where the
 * clean token ids[n, j] (raster, of x [G, L, d]) has a value above the background, times 1 elsewhere; the
 * foreground factors are renormalised to a mean of 1 over the step's tokens so the loss keeps its scale.
 */
export function imageLossWeights(
  arWeights: ArrayLike<number>,
  foregroundWeight: number,
  x: ArrayLike<number>,
  ids: ArrayLike<number>,
  G: number,
  L: number,
  d: number,
): Float32Array {
  if (!(foregroundWeight >= 0)) throw new RangeError(`foregroundWeight must be >= 0, got ${foregroundWeight}`);
  const factor = new Float32Array(G * L).fill(1);
  if (foregroundWeight > 0) {
    let sum = 0;
    for (let n = 0; n < G; n++)
      for (let j = 0; j < L; j++) {
        const base = (n * L + ids[n * L + j]) * d;
        let foreground = false;
        for (let k = 0; k < d && !foreground; k++) foreground = x[base + k] > BACKGROUND_LEVEL;
        if (foreground) factor[n * L + j] += foregroundWeight;
        sum += factor[n * L + j];
      }
    const mean = sum / (G * L);
    for (let i = 0; i < factor.length; i++) factor[i] /= mean;
  }
  for (let n = 0; n < G; n++) for (let j = 0; j < L; j++) factor[n * L + j] *= arWeights[j];
  return factor;
}
