/**
 * The transformer body both models are built from, as a table of parameters: every key name, shape and
 * init rule in one place. The class model (`trainingEntries`), the multimodal model
 * (`multimodalParamEntries`), the tfjs layers of @causalfusion/transformer and the ONNX graphs of
 * @causalfusion/onnx all take their key names from {@link blockKeys} and {@link BODY_KEYS}.
 *
 * Official key names (models.py): `x_proj`, `t_embedder.mlp.{0,2}`, `blocks.<i>.{norm1, attn.qkv,
 * attn.q_norm, attn.k_norm, attn.proj, norm2, mlp.fc1, mlp.fc2}`, `final_layer.{0,1}`.
 */

/** How a parameter starts (the official init rules; see ./init). */
export type InitRule = 'xavier' | 'zeros' | 'ones' | 'normal' | 'sincos';

/**
 * One parameter: its state-dict key, its official shape (as checkpoints store it) and its training layout
 * (nn.Linear weights transposed to [in, out] so that y = x @ W + b; position tables without a leading 1).
 * The tfjs variables and the ONNX graphs use the training layout; checkpoints store the official one.
 */
export interface ParamEntry {
  key: string;
  officialShape: number[];
  shape: number[];
  /** An nn.Linear weight: official [out, in], training [in, out]. */
  transposed: boolean;
  /** Whether the optimizer updates it (a fixed pos_embed does not). */
  trainable: boolean;
  init: InitRule;
  /** `sincos` only: the token grid the table encodes (rows and columns of tokens, raster order). */
  grid?: { height: number; width: number };
}

/** The key names of the layers outside the blocks. */
export const BODY_KEYS = {
  /** Token projection: d token values -> D. */
  xProj: 'x_proj',
  /** The timestep MLP: sinusoid -> Linear -> SiLU -> Linear. */
  timestepFc1: 't_embedder.mlp.0',
  timestepFc2: 't_embedder.mlp.2',
  /** The eps head: LayerNorm, then Linear D -> d. */
  finalNorm: 'final_layer.0',
  finalLinear: 'final_layer.1',
} as const;

/** The key names of the class-conditional model's own tables (models.py). */
export const CLASS_KEYS = {
  /** [1, L, D] officially; [L, D] in the training layout. */
  posEmbed: 'pos_embed',
  /** [1, C, D] officially; [C, D] in the training layout. */
  condPosEmbed: 'cond_pos_embed',
  /** [classes (+1 null), C * D]. */
  labelTable: 'y_embedder.embedding_table.weight',
} as const;

/** The key names of the multimodal model's own tables and its LM head. */
export const MULTIMODAL_KEYS = {
  textEmbed: 'text_embed.weight',
  textPos: 'text_pos_embed',
  imagePos: 'image_pos_embed',
  lmNorm: 'lm_head.0',
  lmLinear: 'lm_head.1',
} as const;

/** The key prefixes of one block's layers. */
export interface BlockKeys {
  norm1: string;
  /** q, k and v in one Linear without bias: output columns (q | k | v) x heads x headDim. */
  qkv: string;
  qNorm: string;
  kNorm: string;
  proj: string;
  norm2: string;
  fc1: string;
  fc2: string;
}

/** The key prefixes of block `i` (`blocks.<i>.norm1`, ...). */
export function blockKeys(i: number): BlockKeys {
  const p = `blocks.${i}`;
  return {
    norm1: `${p}.norm1`,
    qkv: `${p}.attn.qkv`,
    qNorm: `${p}.attn.q_norm`,
    kNorm: `${p}.attn.k_norm`,
    proj: `${p}.attn.proj`,
    norm2: `${p}.norm2`,
    fc1: `${p}.mlp.fc1`,
    fc2: `${p}.mlp.fc2`,
  };
}

/** Width of the timestep sinusoid fed to the timestep MLP. */
export const TIMESTEP_FREQUENCIES = 256;

/** The sizes of the body: width D, heads, MLP hidden units. */
export interface BodyDims {
  hiddenSize: number;
  headDim: number;
  mlpHidden: number;
}

/** Builds a model's parameter list in state-dict order. */
export class ParamTable {
  readonly entries: ParamEntry[] = [];

  /** A plain tensor (an embedding table, a position table): `official` is its checkpoint shape when that differs. */
  tensor(key: string, shape: number[], init: InitRule, options: { official?: number[]; trainable?: boolean; grid?: ParamEntry['grid'] } = {}): this {
    const { official, trainable, grid } = options;
    this.entries.push({ key, officialShape: official ?? [...shape], shape, transposed: false, trainable: trainable ?? true, init, ...(grid ? { grid } : {}) });
    return this;
  }

  /** nn.Linear(fanIn, fanOut): weight (xavier-uniform, or zeros) and bias (zeros). */
  linear(prefix: string, fanIn: number, fanOut: number, options: { bias?: boolean; zeroWeight?: boolean } = {}): this {
    const init = options.zeroWeight ? 'zeros' : 'xavier';
    this.entries.push({ key: `${prefix}.weight`, officialShape: [fanOut, fanIn], shape: [fanIn, fanOut], transposed: true, trainable: true, init });
    if (options.bias ?? true) this.tensor(`${prefix}.bias`, [fanOut], 'zeros');
    return this;
  }

  /** nn.LayerNorm(n): weight (ones) and bias (zeros). */
  norm(prefix: string, n: number): this {
    return this.tensor(`${prefix}.weight`, [n], 'ones').tensor(`${prefix}.bias`, [n], 'zeros');
  }

  /** x_proj and the timestep MLP: what every model puts before its embedding tables' consumers. */
  tokenAndTimestepEmbedders(tokenDim: number, D: number): this {
    return this.linear(BODY_KEYS.xProj, tokenDim, D).linear(BODY_KEYS.timestepFc1, TIMESTEP_FREQUENCIES, D).linear(BODY_KEYS.timestepFc2, D, D);
  }

  /** `depth` pre-LN blocks: QK-LayerNorm attention (qkv without bias) and an MLP. */
  blocks(depth: number, dims: BodyDims): this {
    const D = dims.hiddenSize;
    for (let i = 0; i < depth; i++) {
      const k = blockKeys(i);
      this.norm(k.norm1, D)
        .linear(k.qkv, D, 3 * D, { bias: false })
        .linear(k.proj, D, D)
        .norm(k.qNorm, dims.headDim)
        .norm(k.kNorm, dims.headDim)
        .norm(k.norm2, D)
        .linear(k.fc1, D, dims.mlpHidden)
        .linear(k.fc2, dims.mlpHidden, D);
    }
    return this;
  }

  /** The eps head: LayerNorm + Linear D -> tokenDim, its weight zero at init (as the official code). */
  finalLayer(D: number, tokenDim: number): this {
    return this.norm(BODY_KEYS.finalNorm, D).linear(BODY_KEYS.finalLinear, D, tokenDim, { zeroWeight: true });
  }
}

/** Values in a shape. */
export function sizeOf(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** [rows, cols] -> [cols, rows]. */
export function transpose2d(data: ArrayLike<number>, rows: number, cols: number): Float32Array {
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = data[r * cols + c];
  return out;
}

/** What a layout change needs of a parameter (a ParamEntry, or another holder's entry such as a classifier head's). */
export type LayoutEntry = Pick<ParamEntry, 'key' | 'officialShape' | 'shape' | 'transposed'>;

/** An official tensor in the training layout of its entry (a copy). */
export function toTrainingLayout(entry: LayoutEntry, official: ArrayLike<number>): Float32Array {
  return entry.transposed ? transpose2d(official, entry.officialShape[0], entry.officialShape[1]) : Float32Array.from(official);
}

/** A training-layout tensor in the official layout of its entry (a copy). */
export function toOfficialLayout(entry: LayoutEntry, data: ArrayLike<number>): Float32Array {
  return entry.transposed ? transpose2d(data, entry.shape[0], entry.shape[1]) : Float32Array.from(data);
}

/** A state dict: official key -> shape and values. */
export type StateDict = Map<string, { shape: number[]; data: Float32Array }>;

/** Parameters held in the training layout (entries order) as a state dict in the official layout. */
export function officialStateDict(entries: readonly LayoutEntry[], arrays: readonly ArrayLike<number>[]): StateDict {
  if (arrays.length !== entries.length) throw new Error(`officialStateDict: ${arrays.length} arrays for ${entries.length} parameters`);
  return new Map(entries.map((e, i) => [e.key, { shape: [...e.officialShape], data: toOfficialLayout(e, arrays[i]) }]));
}

/** A state dict (checked with {@link checkStateEntries}) as training-layout arrays in entries order. */
export function trainingArrays(entries: readonly LayoutEntry[], state: ReadonlyMap<string, { data: ArrayLike<number> }>): Float32Array[] {
  return entries.map((e) => toTrainingLayout(e, state.get(e.key)!.data));
}

/** A message that lists at most 40 items (a file of another model must not make a message of megabytes). */
function list(items: string[], sep: string): string {
  return items.length > 40 ? `${items.slice(0, 40).join(sep)}${sep}... (${items.length - 40} more)` : items.join(sep);
}

/**
 * Throws unless `state` holds exactly the keys of `entries` with their official shapes (and as many values
 * as each shape holds), all finite. The Error starts with `${where} does not match ${what}:`, then lists the
 * missing keys, the unexpected keys and the shape mismatches, and ends with `fix`; or names the first
 * tensor holding NaN or Infinity.
 */
export function checkStateEntries(
  entries: readonly ParamEntry[],
  state: ReadonlyMap<string, { shape: number[]; data: ArrayLike<number> }>,
  where: string,
  what: string,
  fix: string,
): void {
  const expected = new Map(entries.map((e) => [e.key, e.officialShape]));
  const missing = [...expected.keys()].filter((k) => !state.has(k));
  const unexpected = [...state.keys()].filter((k) => !expected.has(k));
  const mismatched: string[] = [];
  for (const [key, shape] of expected) {
    const t = state.get(key);
    if (!t) continue;
    if (t.shape.length !== shape.length || t.shape.some((s, i) => s !== shape[i])) {
      mismatched.push(`${key}: checkpoint ${JSON.stringify(t.shape)}, model ${JSON.stringify(shape)}`);
    } else if (t.data.length !== sizeOf(shape)) {
      mismatched.push(`${key}: ${t.data.length} values for shape ${JSON.stringify(t.shape)}`);
    }
  }
  if (missing.length || unexpected.length || mismatched.length) {
    const parts = [`${where} does not match ${what}:`];
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
