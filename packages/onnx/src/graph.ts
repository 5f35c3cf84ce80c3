/**
 * ONNX graphs of the CausalFusion transformer, built from the official weights with onnx-proto. They
 * reproduce @causalfusion/transformer's KV-cache inference (createCache / pushClean / predictEps), op for
 * op, in three graphs with a dynamic number of rows (batch), tokens and cached tokens:
 *
 *   cond: labels [rows] -> the cond tokens label_table[y].reshape(C, D) + cond_pos_embed, run through the
 *         blocks (they attend only to each other) -> key.l, value.l [rows, heads, C, headDim] per block
 *   push: clean tokens [rows, n, tokenDim] at positions + the cache (past_key.l, past_value.l) ->
 *         x_proj + pos_embed (no timestep), each block attending to the cache and to the n new tokens
 *         -> the n new tokens' key.l, value.l
 *   eps:  noised tokens + positions + the ORIGINAL timestep + the cache -> x_proj + pos_embed + t_embed,
 *         the blocks, final LayerNorm + Linear -> eps [rows, n, tokenDim]
 *
 * Keys are stored after k_norm and before the 1/sqrt(headDim) scale (applied to q), as the official cache.
 * Standard opset-17 ops only. Linear weights are transposed once here to [in, out] so that every
 * product is a plain MatMul; the blocks run on [rows * n, D] activations so that ORT fuses each Linear
 * (MatMul + bias Add) into one Gemm, and the tanh-GELU is written in the form ORT fuses into FastGelu.
 */
import { onnx } from 'onnx-proto';
import {
  BODY_KEYS,
  blockKeys,
  CLASS_KEYS,
  derived,
  timestepFrequencies,
  trainingEntries,
  transpose2d,
  validateConfig,
  type ModelConfig,
} from '@causalfusion/config';
import { checkWeights, type Weights } from './weights';

export const OPSET = 17;
const IR_VERSION = 8; // the IR version of opset 17

export const FLOAT = onnx.TensorProto.DataType.FLOAT;
export const INT64 = onnx.TensorProto.DataType.INT64;

/** Input and output names of the three graphs. */
export const IO_NAMES = {
  labels: 'labels',
  tokens: 'tokens',
  noised: 'noised',
  positions: 'positions',
  timestep: 'timestep',
  eps: 'eps',
  pastKey: (layer: number) => `past_key.${layer}`,
  pastValue: (layer: number) => `past_value.${layer}`,
  key: (layer: number) => `key.${layer}`,
  value: (layer: number) => `value.${layer}`,
} as const;

export type GraphName = 'cond' | 'push' | 'eps';

/** The input and output names of each graph for a model of `depth` blocks (in graph order). */
export function graphSignature(depth: number): Record<GraphName, { inputs: string[]; outputs: string[] }> {
  const layers = Array.from({ length: depth }, (_, l) => l);
  const past = layers.flatMap((l) => [IO_NAMES.pastKey(l), IO_NAMES.pastValue(l)]);
  const kv = layers.flatMap((l) => [IO_NAMES.key(l), IO_NAMES.value(l)]);
  return {
    cond: { inputs: [IO_NAMES.labels], outputs: kv },
    push: { inputs: [IO_NAMES.tokens, IO_NAMES.positions, ...past], outputs: kv },
    eps: { inputs: [IO_NAMES.noised, IO_NAMES.positions, IO_NAMES.timestep, ...past], outputs: [IO_NAMES.eps] },
  };
}

export interface BuildOptions {
  /**
   * Keep the weights out of the graphs, in ONE file of this name that all three graphs point into
   * (ONNX external data, resolved next to the .onnx files). Needed above protobuf's 2 GB per graph,
   * and stores the shared block weights once. Default: weights inside each graph.
   */
  externalData?: string;
}

/** The external weights file: each tensor's float32 data at its byte offset (4096-aligned, zeros between). */
export interface ExternalWeights {
  file: string;
  size: number;
  tensors: { name: string; offset: number; data: Float32Array }[];
}

export interface OnnxGraphs {
  config: ModelConfig;
  /** Serialized ModelProtos. */
  cond: Uint8Array;
  push: Uint8Array;
  eps: Uint8Array;
  /** With `externalData`: the file the graphs point into (the caller writes it); else null. */
  externalWeights: ExternalWeights | null;
}

// ------------------------------------------------------------------ the weights, as the graphs use them

/** Initializer name -> dims and data: the weights in the training layout (Linear weights [in, out], named `<key>.T`). */
function weightTable(config: ModelConfig, weights: Weights): Map<string, { dims: number[]; data: Float32Array }> {
  const table = new Map<string, { dims: number[]; data: Float32Array }>();
  for (const e of trainingEntries(config)) {
    const t = weights.get(e.key)!;
    // pos_embed [1, L, D] -> [L, D] for Gather
    if (e.transposed) table.set(`${e.key}.T`, { dims: e.shape, data: transpose2d(t.data, e.officialShape[0], e.officialShape[1]) });
    else table.set(e.key, { dims: e.shape, data: t.data });
  }
  return table;
}

// ------------------------------------------------------------------ a small graph builder

export const attr = {
  int: (name: string, i: number): onnx.IAttributeProto => ({ name, type: onnx.AttributeProto.AttributeType.INT, i }),
  float: (name: string, f: number): onnx.IAttributeProto => ({ name, type: onnx.AttributeProto.AttributeType.FLOAT, f }),
  ints: (name: string, ints: number[]): onnx.IAttributeProto => ({ name, type: onnx.AttributeProto.AttributeType.INTS, ints }),
};

function bytesOf(data: Float32Array | BigInt64Array): Uint8Array {
  // ONNX raw data is little-endian, as typed arrays are on every platform Node supports here
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

export type Dim = number | string;

export function valueInfo(name: string, elemType: number, dims: Dim[] | null): onnx.IValueInfoProto {
  const shape = dims ? { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) } : undefined;
  return { name, type: { tensorType: { elemType, shape } } };
}

export class GraphBuilder {
  readonly nodes: onnx.INodeProto[] = [];
  /** Declared shapes of intermediate tensors (graph.value_info). */
  readonly valueInfo: onnx.IValueInfoProto[] = [];
  private readonly initializers = new Map<string, onnx.ITensorProto>();
  private count = 0;

  constructor(
    private readonly table: Map<string, { dims: number[]; data: Float32Array }>,
    private readonly external: { file: string; offsets: Map<string, number> } | null,
  ) {}

  /** One node with one output (named after the op and a counter, or `output`). */
  op(opType: string, inputs: string[], attributes: onnx.IAttributeProto[] = [], output?: string): string {
    return this.opN(opType, inputs, 1, attributes, output ? [output] : undefined)[0];
  }

  opN(opType: string, inputs: string[], outputs: number, attributes: onnx.IAttributeProto[] = [], names?: string[], domain?: string): string[] {
    const id = this.count++;
    const out = names ?? Array.from({ length: outputs }, (_, i) => `${opType.toLowerCase()}_${id}${outputs > 1 ? `_${i}` : ''}`);
    this.nodes.push({ opType, input: inputs, output: out, name: `${opType}_${id}`, attribute: attributes, ...(domain ? { domain } : {}) });
    return out;
  }

  /** A model weight by its initializer name (added on first use). */
  weight(name: string): string {
    if (!this.initializers.has(name)) {
      const w = this.table.get(name);
      if (!w) throw new Error(`internal: no weight ${name}`);
      const tensor: onnx.ITensorProto = { name, dims: w.dims, dataType: FLOAT };
      if (this.external) {
        tensor.dataLocation = onnx.TensorProto.DataLocation.EXTERNAL;
        tensor.externalData = [
          { key: 'location', value: this.external.file },
          { key: 'offset', value: String(this.external.offsets.get(name)) },
          { key: 'length', value: String(w.data.byteLength) },
        ];
      } else {
        tensor.rawData = bytesOf(w.data);
      }
      this.initializers.set(name, tensor);
    }
    return name;
  }

  /** A small constant, always inside the graph. */
  constant(name: string, values: ArrayLike<number>, type: 'float' | 'int64', dims: number[] = [values.length]): string {
    if (!this.initializers.has(name)) {
      const data = type === 'float' ? Float32Array.from(values) : BigInt64Array.from(Array.from(values), (v) => BigInt(v));
      this.initializers.set(name, { name, dims, dataType: type === 'float' ? FLOAT : INT64, rawData: bytesOf(data) });
    }
    return name;
  }

  scalar(name: string, value: number): string {
    return this.constant(name, [value], 'float', []);
  }

  /** The serialized model; `microsoft`: the graph uses com.microsoft contrib ops (onnxruntime only). */
  finish(name: string, inputs: onnx.IValueInfoProto[], outputs: onnx.IValueInfoProto[], microsoft = false): Uint8Array {
    const graph = onnx.GraphProto.create({
      name,
      node: this.nodes,
      initializer: [...this.initializers.values()],
      input: inputs,
      output: outputs,
      valueInfo: this.valueInfo,
    });
    const model = onnx.ModelProto.create({
      irVersion: IR_VERSION,
      opsetImport: [{ domain: '', version: OPSET }, ...(microsoft ? [{ domain: 'com.microsoft', version: 1 }] : [])],
      producerName: '@causalfusion/onnx',
      graph,
    });
    return onnx.ModelProto.encode(model).finish();
  }
}

// ------------------------------------------------------------------ the model's pieces

const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);

class CausalFusionGraph {
  private readonly D: number;
  private readonly H: number;
  private readonly hd: number;
  /** [rows, n] of the tokens in the blocks (an int64 tensor), set by {@link flatten}. */
  private rowsTokens: string | null = null;
  /** [rows, n, H, hd], made on first use. */
  private headsShape: string | null = null;

  constructor(
    private readonly g: GraphBuilder,
    private readonly config: ModelConfig,
  ) {
    this.D = config.hiddenSize;
    this.H = config.numHeads;
    this.hd = derived(config).headDim;
  }

  /** y = x @ W^T + b with W^T stored [in, out]. */
  linear(x: string, prefix: string, bias = true): string {
    const y = this.g.op('MatMul', [x, this.g.weight(`${prefix}.weight.T`)]);
    return bias ? this.g.op('Add', [y, this.g.weight(`${prefix}.bias`)]) : y;
  }

  /** nn.LayerNorm over the last axis (eps 1e-5). */
  layerNorm(x: string, prefix: string): string {
    return this.g.op(
      'LayerNormalization',
      [x, this.g.weight(`${prefix}.weight`), this.g.weight(`${prefix}.bias`)],
      [attr.int('axis', -1), attr.float('epsilon', 1e-5)],
    );
  }

  /**
   * tanh-GELU, 0.5 x (1 + tanh(sqrt(2/pi) x (1 + 0.044715 x^2))), written node for node in the form that
   * onnxruntime's FastGeluFusion recognizes (Mul(x, 0.044715) -> Mul(., x) -> Add(., 1), Mul(x, sqrt(2/pi)),
   * their product -> Tanh -> Add(., 1), times Mul(x, 0.5)), so ORT runs one FastGelu kernel instead of these
   * nine elementwise nodes; other runtimes see plain opset-17 ops. The constants are the float32 values that
   * fusion compares against.
   */
  geluTanh(x: string): string {
    const g = this.g;
    const cube = g.op('Add', [g.op('Mul', [g.op('Mul', [x, g.scalar('gelu.c', 0.044715)]), x]), g.scalar('gelu.one', 1)]);
    const inner = g.op('Mul', [g.op('Mul', [x, g.scalar('gelu.sqrt_2_over_pi', SQRT_2_OVER_PI)]), cube]);
    const half = g.op('Mul', [x, g.scalar('gelu.half', 0.5)]);
    return g.op('Mul', [half, g.op('Add', [g.op('Tanh', [inner]), g.scalar('gelu.one', 1)])]);
  }

  /** Clean tokens: x_proj(tokens) + pos_embed[positions], [rows, n, D]. */
  embedTokens(tokens: string, positions: string): string {
    const pos = this.g.op('Gather', [this.g.weight(CLASS_KEYS.posEmbed), positions], [attr.int('axis', 0)]);
    return this.g.op('Add', [this.linear(tokens, BODY_KEYS.xProj), pos]);
  }

  /** t_embedder(t) for t [n] (n = 1 or rows) as [n, 1, D]: sinusoid [cos, sin] (256 frequencies), Linear, SiLU, Linear. */
  timestepEmbed(t: string): string {
    const g = this.g;
    const args = g.op('Mul', [g.op('Unsqueeze', [t, g.constant('axes.1', [1], 'int64')]), g.constant('t_freqs', timestepFrequencies(), 'float')]); // [rows, 128]
    const sinusoid = g.op('Concat', [g.op('Cos', [args]), g.op('Sin', [args])], [attr.int('axis', -1)]);
    const h = this.linear(sinusoid, BODY_KEYS.timestepFc1);
    const silu = g.op('Mul', [h, g.op('Sigmoid', [h])]);
    return g.op('Unsqueeze', [this.linear(silu, BODY_KEYS.timestepFc2), g.constant('axes.1', [1], 'int64')]);
  }

  /**
   * Tokens [rows, n, D] -> [rows * n, D], the layout the blocks run in: every Linear is then a 2-D MatMul +
   * bias Add, which ORT fuses into one Gemm (it does not for 3-D inputs of dynamic shape). Remembers
   * [rows, n] for the per-head reshapes and the output.
   */
  flatten(x: string): string {
    const g = this.g;
    this.rowsTokens = g.op('Shape', [x], [attr.int('start', 0), attr.int('end', 2)]);
    return g.op('Reshape', [x, g.constant('shape.flat', [-1, this.D], 'int64')]);
  }

  /** [rows * n, width] -> [rows, n, ...dims] (after {@link flatten}). */
  unflatten(x: string, dims: number[], name: string, output?: string): string {
    const g = this.g;
    if (!this.rowsTokens) throw new Error('internal: unflatten before flatten');
    const shape = g.op('Concat', [this.rowsTokens, g.constant(`shape.${name}`, dims, 'int64')], [attr.int('axis', 0)]);
    return g.op('Reshape', [x, shape], [], output);
  }

  /** [rows * n, D] -> per head [rows, H, n, hd], optionally with a per-head LayerNorm. */
  private heads(x: string, norm: string | null): string {
    const g = this.g;
    if (!this.rowsTokens) throw new Error('internal: heads before flatten');
    this.headsShape ??= g.op('Concat', [this.rowsTokens, g.constant('shape.heads', [this.H, this.hd], 'int64')], [attr.int('axis', 0)]);
    let h = g.op('Reshape', [x, this.headsShape]);
    // the shape comes from a Shape op: declare the rank, so ORT's layout and MatMul fusions see 4-D tensors
    g.valueInfo.push(valueInfo(h, FLOAT, ['rows', 'n', this.H, this.hd]));
    if (norm) h = this.layerNorm(h, norm);
    return g.op('Transpose', [h], [attr.ints('perm', [0, 2, 1, 3])]);
  }

  /**
   * One pre-LN block on x [rows * n, D] (see {@link flatten}) attending to the past keys/values (if any) and to the n tokens
   * themselves, with no mask (the official cache: new tokens see everything cached and each other).
   * Returns the new tokens' key and value [rows, H, n, hd]; with `kvOnly` the block stops there (the
   * last block of a push: its output is never used).
   */
  block(x: string, layer: number, past: { key: string; value: string } | null, kvOnly: boolean): { x: string | null; key: string; value: string } {
    const g = this.g;
    const k = blockKeys(layer);
    const D = this.D;
    const h = this.layerNorm(x, k.norm1);
    // qkv has no bias; its output columns are (q | k | v) x heads x headDim
    const [q2, k2, v2] = g.opN('Split', [this.linear(h, k.qkv, false), g.constant('split.qkv', [D, D, D], 'int64')], 3, [attr.int('axis', -1)]);
    const key = this.heads(k2, k.kNorm);
    const value = this.heads(v2, null);
    if (kvOnly) return { x: null, key, value };
    const q = g.op('Mul', [this.heads(q2, k.qNorm), g.scalar('attn.scale', 1 / Math.sqrt(this.hd))]);
    const keys = past ? g.op('Concat', [past.key, key], [attr.int('axis', 2)]) : key;
    const values = past ? g.op('Concat', [past.value, value], [attr.int('axis', 2)]) : value;
    const scores = g.op('MatMul', [q, g.op('Transpose', [keys], [attr.ints('perm', [0, 1, 3, 2])])]); // [rows, H, n, keys]
    const attn = g.op('Softmax', [scores], [attr.int('axis', -1)]);
    const o = g.op('MatMul', [attn, values]); // [rows, H, n, hd]
    const merged = g.op('Reshape', [g.op('Transpose', [o], [attr.ints('perm', [0, 2, 1, 3])]), g.constant('shape.flat', [-1, D], 'int64')]);
    const x1 = g.op('Add', [x, this.linear(merged, k.proj)]);
    const m = this.linear(this.geluTanh(this.linear(this.layerNorm(x1, k.norm2), k.fc1)), k.fc2);
    return { x: g.op('Add', [x1, m]), key, value };
  }

  /** Run tokens [rows, n, D] through the blocks, exporting each block's new keys/values as key.l / value.l (cond and push graphs). */
  pushThroughBlocks(x: string, withPast: boolean): void {
    let h: string | null = this.flatten(x);
    for (let l = 0; l < this.config.depth; l++) {
      const past = withPast ? { key: IO_NAMES.pastKey(l), value: IO_NAMES.pastValue(l) } : null;
      const last = l === this.config.depth - 1;
      const r = this.block(h!, l, past, last);
      this.g.op('Identity', [r.key], [], IO_NAMES.key(l));
      this.g.op('Identity', [r.value], [], IO_NAMES.value(l));
      h = r.x;
    }
  }
}

// ------------------------------------------------------------------ the three graphs

/**
 * Build the cond, push and eps graphs of a model from its official weights (key -> {shape, data}, as
 * model.safetensors holds them). The weights are checked against the config first.
 */
export function buildOnnxGraphs(config: ModelConfig, weights: Weights, options: BuildOptions = {}): OnnxGraphs {
  validateConfig(config);
  checkWeights(config, weights);
  const d = derived(config);
  const H = config.numHeads;
  const table = weightTable(config, weights);

  let external: { file: string; offsets: Map<string, number> } | null = null;
  let externalWeights: ExternalWeights | null = null;
  if (options.externalData) {
    const offsets = new Map<string, number>();
    const tensors: ExternalWeights['tensors'] = [];
    let offset = 0;
    for (const [name, w] of table) {
      offsets.set(name, offset);
      tensors.push({ name, offset, data: w.data });
      offset = Math.ceil((offset + w.data.byteLength) / 4096) * 4096; // page-aligned, so ORT may map them
    }
    external = { file: options.externalData, offsets };
    externalWeights = {
      file: options.externalData,
      size: tensors.length ? tensors[tensors.length - 1].offset + tensors[tensors.length - 1].data.byteLength : 0,
      tensors,
    };
  } else {
    // protobuf caps a message at 2 GB; the eps graph holds every weight
    let bytes = 0;
    for (const w of table.values()) bytes += w.data.byteLength;
    if (bytes > 1.9e9) {
      throw new Error(
        `the model's weights (${(bytes / 1e9).toFixed(2)} GB) do not fit in one ONNX protobuf (2 GB): export it with exportOnnx ` +
          `(the weights go to one external file) and load the exported folder`,
      );
    }
  }

  const past = (l: number) => [
    valueInfo(IO_NAMES.pastKey(l), FLOAT, ['rows', H, 'past', d.headDim]),
    valueInfo(IO_NAMES.pastValue(l), FLOAT, ['rows', H, 'past', d.headDim]),
  ];
  const kvOut = (l: number, n: Dim) => [
    valueInfo(IO_NAMES.key(l), FLOAT, ['rows', H, n, d.headDim]),
    valueInfo(IO_NAMES.value(l), FLOAT, ['rows', H, n, d.headDim]),
  ];
  const layers = Array.from({ length: config.depth }, (_, l) => l);
  // positions: [rows, n] int64 (or [n], shared by all rows): left without a declared shape so both fit
  const positions = valueInfo(IO_NAMES.positions, INT64, null);

  // cond: labels -> cond tokens -> keys/values of the C cond tokens
  const cond = (() => {
    const g = new GraphBuilder(table, external);
    const m = new CausalFusionGraph(g, config);
    const rowsOfTable = g.op('Gather', [g.weight(CLASS_KEYS.labelTable), IO_NAMES.labels], [attr.int('axis', 0)]);
    const tokens = g.op('Reshape', [rowsOfTable, g.constant('shape.cond', [0, config.numCondTokens, config.hiddenSize], 'int64')]);
    m.pushThroughBlocks(g.op('Add', [tokens, g.weight(CLASS_KEYS.condPosEmbed)]), false);
    return g.finish(
      'causalfusion_cond',
      [valueInfo(IO_NAMES.labels, INT64, ['rows'])],
      layers.flatMap((l) => kvOut(l, config.numCondTokens)),
    );
  })();

  // push: clean tokens (no timestep) -> their keys/values, attending to the cache
  const push = (() => {
    const g = new GraphBuilder(table, external);
    const m = new CausalFusionGraph(g, config);
    m.pushThroughBlocks(m.embedTokens(IO_NAMES.tokens, IO_NAMES.positions), true);
    return g.finish(
      'causalfusion_push',
      [valueInfo(IO_NAMES.tokens, FLOAT, ['rows', 'n', d.tokenDim]), positions, ...layers.flatMap(past)],
      layers.flatMap((l) => kvOut(l, 'n')),
    );
  })();

  // eps: noised tokens + t_embed -> blocks -> final LayerNorm + Linear
  const eps = (() => {
    const g = new GraphBuilder(table, external);
    const m = new CausalFusionGraph(g, config);
    let x = m.flatten(g.op('Add', [m.embedTokens(IO_NAMES.noised, IO_NAMES.positions), m.timestepEmbed(IO_NAMES.timestep)]));
    for (const l of layers) x = m.block(x, l, { key: IO_NAMES.pastKey(l), value: IO_NAMES.pastValue(l) }, false).x!;
    m.unflatten(m.linear(m.layerNorm(x, BODY_KEYS.finalNorm), BODY_KEYS.finalLinear), [d.tokenDim], 'eps', IO_NAMES.eps);
    return g.finish(
      'causalfusion_eps',
      [valueInfo(IO_NAMES.noised, FLOAT, ['rows', 'n', d.tokenDim]), positions, valueInfo(IO_NAMES.timestep, FLOAT, ['timesteps']), ...layers.flatMap(past)],
      [valueInfo(IO_NAMES.eps, FLOAT, ['rows', 'n', d.tokenDim])],
    );
  })();

  return { config: { ...config }, cond, push, eps, externalWeights };
}
