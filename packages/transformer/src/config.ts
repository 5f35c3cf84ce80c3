/**
 * Model configuration: the arguments of the official `CausalDiffusionModel` constructor, the paper's
 * L / XL / H presets and small presets that train on a CPU.
 */

export interface ModelConfig {
  /** Latent side length (image size / 16 for the official VAE): the latent is inputSize x inputSize. */
  inputSize: number;
  /** Patch side length p; a token holds p*p*latentChannels values. */
  patchSize: number;
  latentChannels: number;
  /** D: the transformer width. */
  hiddenSize: number;
  /** Number of cond tokens the label embedding is split into. */
  numCondTokens: number;
  /** Number of transformer blocks. */
  depth: number;
  numHeads: number;
  /** MLP hidden width = hiddenSize * mlpRatio. */
  mlpRatio: number;
  numClasses: number;
  /**
   * Label dropout probability for classifier-free guidance. When > 0 the label table has one extra
   * row, the null class `numClasses`.
   */
  classDropoutProb: number;
  /** Whether pos_embed is trained (the paper's models) or kept at its 2-D sin-cos init. */
  trainablePos: boolean;
}

/** The official defaults of `CausalDiffusionModel.__init__`. */
export const DEFAULT_CONFIG: ModelConfig = {
  inputSize: 32,
  patchSize: 2,
  latentChannels: 4,
  hiddenSize: 1152,
  numCondTokens: 4,
  depth: 28,
  numHeads: 16,
  mlpRatio: 4,
  numClasses: 1000,
  classDropoutProb: 0.1,
  trainablePos: false,
};

/** The paper's models (official `model_dict`) at 256x256 (16x16 latents), and small CPU ones. */
export const PRESETS = {
  'CausalFusion-L': { depth: 24, hiddenSize: 1024, patchSize: 1, latentChannels: 16, numHeads: 16, numCondTokens: 64, trainablePos: true, inputSize: 16 },
  'CausalFusion-XL': { depth: 32, hiddenSize: 1280, patchSize: 1, latentChannels: 16, numHeads: 20, numCondTokens: 64, trainablePos: true, inputSize: 16 },
  'CausalFusion-H': { depth: 48, hiddenSize: 1408, patchSize: 1, latentChannels: 16, numHeads: 22, numCondTokens: 64, trainablePos: true, inputSize: 16 },
  /** 8x8x4 latents, 256 wide, 4 blocks: the train-step benchmark model (about 3.3M parameters). */
  'CausalFusion-S': { depth: 4, hiddenSize: 256, patchSize: 1, latentChannels: 4, numHeads: 4, numCondTokens: 4, trainablePos: true, inputSize: 8, numClasses: 10 },
  /** The shape of the official parity model (tests): 4x4x4 latents, 64 wide, 2 blocks, 10 classes. */
  'CausalFusion-Tiny': { depth: 2, hiddenSize: 64, patchSize: 1, latentChannels: 4, numHeads: 4, numCondTokens: 4, trainablePos: true, inputSize: 4, numClasses: 10 },
} satisfies Record<string, Partial<ModelConfig>>;

export type PresetName = keyof typeof PRESETS;

/** A full config from a preset name and/or overrides on top of the official defaults, validated. */
export function makeConfig(preset?: PresetName | null, overrides: Partial<ModelConfig> = {}): ModelConfig {
  let base: Partial<ModelConfig> = {};
  if (preset != null) {
    if (!(preset in PRESETS)) {
      throw new Error(`Unknown model preset "${preset}": use one of ${Object.keys(PRESETS).join(', ')}`);
    }
    base = PRESETS[preset];
  }
  const config = { ...DEFAULT_CONFIG, ...base, ...overrides };
  validateConfig(config);
  return config;
}

/** Throws an Error naming the first inconsistent field. */
export function validateConfig(c: ModelConfig): void {
  const positiveInts: (keyof ModelConfig)[] = [
    'inputSize', 'patchSize', 'latentChannels', 'hiddenSize', 'numCondTokens', 'depth', 'numHeads', 'numClasses',
  ];
  for (const k of positiveInts) {
    const v = c[k];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) throw new Error(`model config: ${k} must be a positive integer, got ${String(v)}`);
  }
  if (c.inputSize % c.patchSize !== 0) {
    throw new Error(`model config: inputSize ${c.inputSize} is not divisible by patchSize ${c.patchSize}`);
  }
  if (c.hiddenSize % c.numHeads !== 0) {
    throw new Error(`model config: hiddenSize ${c.hiddenSize} is not divisible by numHeads ${c.numHeads}`);
  }
  if (c.hiddenSize % 4 !== 0) {
    throw new Error(`model config: hiddenSize ${c.hiddenSize} must be a multiple of 4 for the 2-D sin-cos pos_embed`);
  }
  if (!(c.mlpRatio > 0)) throw new Error(`model config: mlpRatio must be positive, got ${c.mlpRatio}`);
  if (!(c.classDropoutProb >= 0 && c.classDropoutProb < 1)) {
    throw new Error(`model config: classDropoutProb must be in [0, 1), got ${c.classDropoutProb}`);
  }
  if (typeof c.trainablePos !== 'boolean') throw new Error(`model config: trainablePos must be true or false`);
}

/** Quantities that follow from a config. */
export function derived(c: ModelConfig) {
  const grid = c.inputSize / c.patchSize;
  return {
    /** L: tokens per sample. */
    numTokens: grid * grid,
    grid,
    /** d: values per token (p*p*C). */
    tokenDim: c.patchSize * c.patchSize * c.latentChannels,
    headDim: c.hiddenSize / c.numHeads,
    mlpHidden: Math.floor(c.hiddenSize * c.mlpRatio),
    /** Rows of the label table: the classes plus the null class when label dropout is on. */
    labelRows: c.numClasses + (c.classDropoutProb > 0 ? 1 : 0),
    /** The null class index (as the official LabelEmbedder), or null without label dropout. */
    nullClass: c.classDropoutProb > 0 ? c.numClasses : null,
  };
}

/** The config as `config.json` stores it: the official constructor's argument names. */
export function configToJson(c: ModelConfig): Record<string, number | boolean> {
  return {
    input_size: c.inputSize,
    patch_size: c.patchSize,
    latent_channels: c.latentChannels,
    hidden_size: c.hiddenSize,
    num_cond_tokens: c.numCondTokens,
    depth: c.depth,
    num_heads: c.numHeads,
    mlp_ratio: c.mlpRatio,
    num_classes: c.numClasses,
    class_dropout_prob: c.classDropoutProb,
    trainable_pos: c.trainablePos,
  };
}

const JSON_KEYS: Record<string, keyof ModelConfig> = {
  input_size: 'inputSize',
  patch_size: 'patchSize',
  latent_channels: 'latentChannels',
  hidden_size: 'hiddenSize',
  num_cond_tokens: 'numCondTokens',
  depth: 'depth',
  num_heads: 'numHeads',
  mlp_ratio: 'mlpRatio',
  num_classes: 'numClasses',
  class_dropout_prob: 'classDropoutProb',
  trainable_pos: 'trainablePos',
};

/**
 * Reads a config.json: the official argument names (snake_case) on top of an optional `"model"` preset
 * (`"CausalFusion-XL"`, ...) and the official defaults. camelCase names are accepted too.
 */
export function configFromJson(json: unknown, where = 'config.json'): ModelConfig {
  if (json === null || typeof json !== 'object' || Array.isArray(json)) throw new Error(`${where}: expected a JSON object`);
  const obj = json as Record<string, unknown>;
  const overrides: Record<string, unknown> = {};
  const camel = new Set(Object.values(JSON_KEYS) as string[]);
  for (const [k, v] of Object.entries(obj)) {
    if (k === 'model') continue;
    if (k in JSON_KEYS) overrides[JSON_KEYS[k]] = v;
    else if (camel.has(k)) overrides[k] = v;
    else throw new Error(`${where}: unknown field "${k}"; known fields: model, ${Object.keys(JSON_KEYS).join(', ')}`);
  }
  const preset = obj.model as PresetName | undefined;
  try {
    return makeConfig(preset ?? null, overrides as Partial<ModelConfig>);
  } catch (err) {
    throw new Error(`${where}: ${(err as Error).message}`);
  }
}
