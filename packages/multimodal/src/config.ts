/**
 * The multimodal model's configuration (config.json of a model folder). No tfjs: part of the
 * `@causalfusion/multimodal/layout` entry.
 */

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

export const CONFIG_FORMAT = 'causalfusion-multimodal';

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
  return { format: CONFIG_FORMAT, ...c };
}

export function multimodalConfigFromJson(json: unknown, where = 'config.json'): MultimodalConfig {
  if (json === null || typeof json !== 'object' || Array.isArray(json)) throw new Error(`${where}: expected a JSON object`);
  const { format, ...rest } = json as Record<string, unknown>;
  if (format !== CONFIG_FORMAT) {
    throw new Error(`${where} is not a multimodal model config (format ${JSON.stringify(format)}, expected "${CONFIG_FORMAT}")`);
  }
  const config = rest as unknown as MultimodalConfig;
  try {
    validateMultimodalConfig(config);
  } catch (e) {
    throw new Error(`${where}: ${(e as Error).message}`);
  }
  return config;
}
