/**
 * Model configuration: the arguments of the official `CausalDiffusionModel` constructor, the paper's
 * L / XL / H presets and small presets that train on a CPU.
 */
import * as fs from 'fs';

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
    throw new Error(`model config: the model would have ${n > 1e12 || !Number.isFinite(n) ? n.toExponential(3) : n} parameters; at most ${MAX_PARAMETERS} (8 GB of float32) are supported`);
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
  return grid * grid * D + c.numCondTokens * D + (tokenDim * D + D) + (256 * D + D) + (D * D + D) + labelRows * c.numCondTokens * D + c.depth * block + 2 * D + (D * tokenDim + tokenDim);
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

/** The official state_dict of a config, in its order: key -> shape (nn.Linear weights are [out, in]). */
export function officialShapes(config: ModelConfig): Map<string, number[]> {
  const c = config;
  const d = derived(c);
  const D = c.hiddenSize;
  const out = new Map<string, number[]>();
  const linear = (prefix: string, fanIn: number, fanOut: number, bias = true) => {
    out.set(`${prefix}.weight`, [fanOut, fanIn]);
    if (bias) out.set(`${prefix}.bias`, [fanOut]);
  };
  const norm = (prefix: string, n: number) => {
    out.set(`${prefix}.weight`, [n]);
    out.set(`${prefix}.bias`, [n]);
  };
  out.set('pos_embed', [1, d.numTokens, D]);
  out.set('cond_pos_embed', [1, c.numCondTokens, D]);
  linear('x_proj', d.tokenDim, D);
  linear('t_embedder.mlp.0', 256, D);
  linear('t_embedder.mlp.2', D, D);
  out.set('y_embedder.embedding_table.weight', [d.labelRows, c.numCondTokens * D]);
  for (let i = 0; i < c.depth; i++) {
    norm(`blocks.${i}.norm1`, D);
    linear(`blocks.${i}.attn.qkv`, D, 3 * D, false);
    linear(`blocks.${i}.attn.proj`, D, D);
    norm(`blocks.${i}.attn.q_norm`, d.headDim);
    norm(`blocks.${i}.attn.k_norm`, d.headDim);
    norm(`blocks.${i}.norm2`, D);
    linear(`blocks.${i}.mlp.fc1`, D, d.mlpHidden);
    linear(`blocks.${i}.mlp.fc2`, d.mlpHidden, D);
  }
  norm('final_layer.0', D);
  linear('final_layer.1', D, d.tokenDim);
  return out;
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
  const base = officialShapes({ ...config, depth: 0 }).size;
  const keyCount = base + (officialShapes({ ...config, depth: 1 }).size - base) * config.depth;
  if (keyCount > state.size + 10_000) {
    throw new Error(`${where} does not match the model config (${JSON.stringify(config)}): the config has ${keyCount} tensors, the file ${state.size}\n${fix}`);
  }
  const expected = officialShapes(config);
  const missing = [...expected.keys()].filter((k) => !state.has(k));
  const unexpected = [...state.keys()].filter((k) => !expected.has(k));
  const mismatched: string[] = [];
  for (const [key, shape] of expected) {
    const t = state.get(key);
    if (!t) continue;
    if (t.shape.length !== shape.length || t.shape.some((s, i) => s !== shape[i])) {
      mismatched.push(`${key}: checkpoint ${JSON.stringify(t.shape)}, model ${JSON.stringify(shape)}`);
    } else if (t.data.length !== shape.reduce((a, b) => a * b, 1)) {
      mismatched.push(`${key}: ${t.data.length} values for shape ${JSON.stringify(t.shape)}`);
    }
  }
  if (missing.length || unexpected.length || mismatched.length) {
    // at most 40 of each: a file of another model must not make a message of megabytes
    const list = (items: string[], sep: string) => (items.length > 40 ? `${items.slice(0, 40).join(sep)}${sep}... (${items.length - 40} more)` : items.join(sep));
    const parts = [`${where} does not match the model config (${JSON.stringify(config)}):`];
    if (missing.length) parts.push(`  missing keys (${missing.length}): ${list(missing, ', ')}`);
    if (unexpected.length) parts.push(`  unexpected keys (${unexpected.length}): ${list(unexpected, ', ')}`);
    if (mismatched.length) parts.push(`  shape mismatches (${mismatched.length}): ${list(mismatched, '; ')}`);
    parts.push(fix);
    throw new Error(parts.join('\n'));
  }
  // NaN or Inf weights only make NaN images: say so at load time, naming the tensor.
  for (const [key, t] of state) {
    for (let i = 0; i < t.data.length; i++) {
      if (!Number.isFinite(t.data[i])) {
        throw new Error(`${where}: tensor "${key}" holds ${t.data[i]} at index ${i}; the weights are damaged (or from a diverged run): use another checkpoint`);
      }
    }
  }
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

/**
 * One parameter as a trainer holds it: the official key and shape, and the training layout (nn.Linear
 * weights transposed to [in, out] so that y = x @ W + b; pos_embed and cond_pos_embed without their
 * leading 1). The tfjs variables and the ONNX training graphs use this layout; checkpoints store the
 * official one.
 */
export interface TrainingEntry {
  key: string;
  officialShape: number[];
  shape: number[];
  transposed: boolean;
  /** pos_embed is fixed unless trainablePos. */
  trainable: boolean;
}

/** The parameters of a config in state_dict order, in the training layout ({@link TrainingEntry}). */
export function trainingEntries(config: ModelConfig): TrainingEntry[] {
  return [...officialShapes(config)].map(([key, officialShape]) => {
    const transposed = key.endsWith('.weight') && officialShape.length === 2 && key !== 'y_embedder.embedding_table.weight';
    const shape = transposed ? [officialShape[1], officialShape[0]] : officialShape.length === 3 ? officialShape.slice(1) : [...officialShape];
    return { key, officialShape, shape, transposed, trainable: key !== 'pos_embed' || config.trainablePos };
  });
}

/** [rows, cols] -> [cols, rows]. */
export function transpose2d(data: ArrayLike<number>, rows: number, cols: number): Float32Array {
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = data[r * cols + c];
  return out;
}

/** An official tensor in the training layout of its entry (a copy). */
export function toTrainingLayout(entry: TrainingEntry, official: ArrayLike<number>): Float32Array {
  return entry.transposed ? transpose2d(official, entry.officialShape[0], entry.officialShape[1]) : Float32Array.from(official);
}

/** A training-layout tensor in the official layout of its entry (a copy). */
export function toOfficialLayout(entry: TrainingEntry, data: ArrayLike<number>): Float32Array {
  return entry.transposed ? transpose2d(data, entry.shape[0], entry.shape[1]) : Float32Array.from(data);
}
