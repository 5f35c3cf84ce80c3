/**
 * Model configuration: the arguments of the official `CausalDiffusionModel` constructor, the paper's
 * L / XL / H presets and small presets that train on a CPU.
 */
import * as fs from 'fs';
import { checkStateEntries, CLASS_KEYS, ParamTable, type ParamEntry } from './layers';

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
  'CausalFusion-S': {
    depth: 4,
    hiddenSize: 256,
    patchSize: 1,
    latentChannels: 4,
    numHeads: 4,
    numCondTokens: 4,
    trainablePos: true,
    inputSize: 8,
    numClasses: 10,
  },
  /** The shape of the official parity model (tests): 4x4x4 latents, 64 wide, 2 blocks, 10 classes. */
  'CausalFusion-Tiny': {
    depth: 2,
    hiddenSize: 64,
    patchSize: 1,
    latentChannels: 4,
    numHeads: 4,
    numCondTokens: 4,
    trainablePos: true,
    inputSize: 4,
    numClasses: 10,
  },
} satisfies Record<string, Partial<ModelConfig>>;

export type PresetName = keyof typeof PRESETS;

/** A full config from a preset name and/or overrides on top of the official defaults, validated. */
export function makeConfig(preset?: PresetName | null, overrides: Partial<ModelConfig> = {}): ModelConfig {
  let base: Partial<ModelConfig> = {};
  if (preset != null) {
    if (typeof preset !== 'string' || !Object.hasOwn(PRESETS, preset)) {
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
  const positiveInts: (keyof ModelConfig)[] = ['inputSize', 'patchSize', 'latentChannels', 'hiddenSize', 'numCondTokens', 'depth', 'numHeads', 'numClasses'];
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
  if (typeof c.mlpRatio !== 'number' || !Number.isFinite(c.mlpRatio) || !(c.mlpRatio > 0)) {
    throw new Error(`model config: mlpRatio must be a positive finite number, got ${JSON.stringify(c.mlpRatio)}`);
  }
  if (typeof c.classDropoutProb !== 'number' || !(c.classDropoutProb >= 0 && c.classDropoutProb < 1)) {
    throw new Error(`model config: classDropoutProb must be a number in [0, 1), got ${JSON.stringify(c.classDropoutProb)}`);
  }
  if (typeof c.trainablePos !== 'boolean') throw new Error(`model config: trainablePos must be true or false`);
  if (Math.floor(c.hiddenSize * c.mlpRatio) < 1) {
    throw new Error(`model config: hiddenSize ${c.hiddenSize} x mlpRatio ${c.mlpRatio} leaves the MLP no hidden units`);
  }
  // Counted in closed form, before anything loops over blocks or allocates: a hand-edited depth of 1e9
  // or input_size of 1e300 is refused here rather than hanging or failing inside a typed-array constructor.
  const n = parameterCount(c);
  if (!(n <= MAX_PARAMETERS)) {
    throw new Error(
      `model config: the model would have ${n > 1e12 || !Number.isFinite(n) ? n.toExponential(3) : n} parameters; at most ${MAX_PARAMETERS} (8 GB of float32) are supported`,
    );
  }
}

/** Largest model a config may describe (2^31 - 1 parameters; CausalFusion-H has about 1.2e9). */
export const MAX_PARAMETERS = 2 ** 31 - 1;

/** Number of parameters of a config's official state_dict, without building it (may be Infinity). */
export function parameterCount(c: ModelConfig): number {
  const D = c.hiddenSize;
  const grid = c.inputSize / c.patchSize;
  const tokenDim = c.patchSize * c.patchSize * c.latentChannels;
  const mlp = Math.floor(D * c.mlpRatio);
  const headDim = D / c.numHeads;
  const labelRows = c.numClasses + (c.classDropoutProb > 0 ? 1 : 0);
  const block = 2 * D + 3 * D * D + (D * D + D) + 4 * headDim + 2 * D + (D * mlp + mlp) + (mlp * D + D);
  return (
    grid * grid * D +
    c.numCondTokens * D +
    (tokenDim * D + D) +
    (256 * D + D) +
    (D * D + D) +
    labelRows * c.numCondTokens * D +
    c.depth * block +
    2 * D +
    (D * tokenDim + tokenDim)
  );
}

/** Quantities that follow from a config. */
export function derived(c: ModelConfig) {
  const grid = c.inputSize / c.patchSize;
  return {
    /** L: tokens per sample. */
    numTokens: grid * grid,
    grid,
    /** d: values per token (p*p*latentChannels). */
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
    const snake = Object.keys(JSON_KEYS).find((s) => JSON_KEYS[s] === k && s !== k);
    if (snake !== undefined && snake in obj) throw new Error(`${where}: "${snake}" and "${k}" are the same field; give it once`);
    if (Object.hasOwn(JSON_KEYS, k)) overrides[JSON_KEYS[k]] = v;
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

/**
 * The parameters of a config in state_dict order (./layers): official keys and shapes (nn.Linear weights
 * [out, in], pos_embed [1, L, D]), the training layout (Linear weights [in, out], pos_embed [L, D]) and the
 * official init rules. pos_embed trains only with trainablePos.
 */
export function trainingEntries(config: ModelConfig): ParamEntry[] {
  const c = config;
  const d = derived(c);
  const D = c.hiddenSize;
  return new ParamTable()
    .tensor(CLASS_KEYS.posEmbed, [d.numTokens, D], 'sincos', {
      official: [1, d.numTokens, D],
      trainable: c.trainablePos,
      grid: { height: d.grid, width: d.grid },
    })
    .tensor(CLASS_KEYS.condPosEmbed, [c.numCondTokens, D], 'normal', { official: [1, c.numCondTokens, D] })
    .tokenAndTimestepEmbedders(d.tokenDim, D)
    .tensor(CLASS_KEYS.labelTable, [d.labelRows, c.numCondTokens * D], 'normal')
    .blocks(c.depth, { hiddenSize: D, headDim: d.headDim, mlpHidden: d.mlpHidden })
    .finalLayer(D, d.tokenDim).entries;
}

/** The official state_dict of a config, in its order: key -> shape (nn.Linear weights are [out, in]). */
export function officialShapes(config: ModelConfig): Map<string, number[]> {
  return new Map(trainingEntries(config).map((e) => [e.key, e.officialShape]));
}

/**
 * Throws unless `state` holds exactly the official keys of `config` with their shapes (and as many
 * values as each shape holds), all finite; the Error lists the missing keys, the unexpected keys and
 * the shape mismatches, and names the fix (or names the first tensor holding NaN or Infinity).
 */
export function checkStateDict(config: ModelConfig, state: ReadonlyMap<string, { shape: number[]; data: ArrayLike<number> }>, where = 'checkpoint'): void {
  const fix = '  Fix: use the config the checkpoint was trained with (config.json next to model.safetensors).';
  // A config far larger than the file (a hand-edited depth of 65536) would build and list a million
  // missing keys: compare the key counts first, counted without building the list.
  const base = trainingEntries({ ...config, depth: 0 }).length;
  const keyCount = base + (trainingEntries({ ...config, depth: 1 }).length - base) * config.depth;
  if (keyCount > state.size + 10_000) {
    throw new Error(`${where} does not match the model config (${JSON.stringify(config)}): the config has ${keyCount} tensors, the file ${state.size}\n${fix}`);
  }
  checkStateEntries(trainingEntries(config), state, where, `the model config (${JSON.stringify(config)})`, fix);
}

/** Read a config.json file ({@link configFromJson}); a file that is not JSON gets an error naming it. */
export function readConfigFile(file: string): ModelConfig {
  let json: unknown;
  try {
    json = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (err) {
    throw new Error(`${file}: cannot read the model config (${(err as Error).message.replace(/\s+/g, ' ')})`);
  }
  return configFromJson(json, file);
}
