/**
 * The ONNX graphs as a `Denoiser` for @causalfusion/sampler, run by onnxruntime-node. A session keeps
 * the KV cache (per block, keys and values [rows, heads, tokens, headDim]) as Float32Arrays: the cond
 * graph fills it at start, each pushClean appends the clean tokens' keys/values, and predictEps feeds
 * it to the eps graph without changing it. The sampler does CFG itself (conditions, then `null` rows).
 */
import * as fs from 'fs';
import * as path from 'path';
import type { Denoiser, DenoiserSession } from '@causalfusion/sampler';
import { derived, type ModelConfig } from '@causalfusion/transformer/config';
import { buildOnnxGraphs, IO_NAMES, type OnnxGraphs } from './graph';
import { MANIFEST_FILE, readManifest } from './export';
import { readModelFolder, type Weights } from './weights';

type Ort = typeof import('onnxruntime-node');
type InferenceSession = import('onnxruntime-node').InferenceSession;
type OrtTensor = import('onnxruntime-node').Tensor;

export interface OrtOptions {
  /** Threads of each ORT session (intraOpNumThreads); default: ORT's choice (one per core). */
  threads?: number;
  /** 'cpu' (default) or 'cuda' (onnxruntime-node's CUDA execution provider, when its libraries are installed). */
  device?: 'cpu' | 'cuda';
}

/** One layer of the cache in the official layout: k (after k_norm) and v, [rows, heads, tokens, headDim]. */
export interface KVLayer {
  k: Float32Array;
  v: Float32Array;
  shape: [number, number, number, number];
}

export interface OrtDenoiserSession extends DenoiserSession {
  /** Tokens held in the cache (cond tokens included). */
  readonly length: number;
  readonly rows: number;
  pushClean(tokens: Float32Array, positions: Int32Array, count: number): Promise<void>;
  predictEps(noised: Float32Array, positions: Int32Array, count: number, timestep: number): Promise<Float32Array>;
  /** The cache, per block (copies; for inspection and tests). */
  kvCache(): KVLayer[];
  dispose(): void;
}

type Sessions = { cond: InferenceSession; push: InferenceSession; eps: InferenceSession };

async function loadOrt(): Promise<Ort> {
  // loaded lazily (building and exporting graphs never touches native code), with require rather than
  // import(): a CommonJS consumer under a test runner's VM may not support dynamic import
  return require('onnxruntime-node') as Ort;
}

async function createSessions(ort: Ort, sources: Record<keyof Sessions, string | Uint8Array>, options: OrtOptions): Promise<Sessions> {
  const device = options.device ?? 'cpu';
  if (device !== 'cpu' && device !== 'cuda') throw new Error(`device "${String(device)}" is not supported; use 'cpu' or 'cuda'`);
  if (options.threads !== undefined && !(Number.isInteger(options.threads) && options.threads >= 1)) {
    throw new Error(`threads must be a positive integer, got ${options.threads}`);
  }
  const sessionOptions: import('onnxruntime-node').InferenceSession.SessionOptions = {
    executionProviders: [device],
    graphOptimizationLevel: 'all',
    ...(options.threads ? { intraOpNumThreads: options.threads } : {}),
    // no spin-waiting: between calls the sampler's JavaScript needs the cores that idle ORT threads would spin on
    extra: { session: { intra_op: { allow_spinning: '0' } } },
  };
  if (device === 'cuda') checkCudaProvider();
  const create = (src: string | Uint8Array) => ort.InferenceSession.create(src as Uint8Array, sessionOptions);
  const created: Partial<Sessions> = {};
  try {
    for (const name of ['cond', 'push', 'eps'] as const) created[name] = await create(sources[name]);
  } catch (err) {
    await Promise.all(Object.values(created).map((s) => s.release()));
    const message = (err as Error).message;
    if (device === 'cuda') {
      throw new Error(
        `onnxruntime-node ${ort.env.versions.node ?? ''} cannot use CUDA here (${message.split('\n')[0]}). Its CUDA execution ` +
          `provider needs libonnxruntime_providers_shared.so and libonnxruntime_providers_cuda.so beside its binding (onnxruntime-node's ` +
          `install script downloads them; this workspace does not run it), plus CUDA 12 and cuDNN 9 on the machine. ` +
          `Use --device cpu (device: 'cpu') to run on the CPU.`,
      );
    }
    throw err;
  }
  return created as Sessions;
}

/**
 * The CUDA provider is a shared library beside onnxruntime-node's binding; without it ORT fails deep
 * inside and prints a native error line. Look first, and say what is missing.
 */
function checkCudaProvider(): void {
  let bindingDir: string;
  try {
    const main = require.resolve('onnxruntime-node');
    bindingDir = path.join(path.dirname(main), '..', 'bin', 'napi-v6', process.platform, process.arch);
  } catch {
    return; // an unusual install: let ORT itself report
  }
  const missing = ['libonnxruntime_providers_shared.so', 'libonnxruntime_providers_cuda.so'].filter((f) => !fs.existsSync(path.join(bindingDir, f)));
  if (process.platform === 'linux' && missing.length) {
    throw new Error(
      `this onnxruntime-node has no CUDA execution provider (${missing.join(' and ')} missing in ${bindingDir}; its install script ` +
        `downloads them, and this workspace does not run it). Use --device cpu (device: 'cpu') to run on the CPU.`,
    );
  }
}

function checkLength(name: string, values: ArrayLike<number>, expected: number, layout: string): void {
  if (values == null || values.length !== expected) {
    throw new Error(`${name} has ${values == null ? 'no' : values.length} values, expected ${expected} (${layout})`);
  }
}

export class OrtDenoiser implements Denoiser<number> {
  readonly numTokens: number;
  readonly tokenDim: number;
  /** The null class (numClasses), or null when the model has no label dropout. */
  readonly nullClass: number | null;
  private released = false;

  private constructor(
    readonly config: ModelConfig,
    private readonly ort: Ort,
    private readonly sessions: Sessions,
  ) {
    const d = derived(config);
    this.numTokens = d.numTokens;
    this.tokenDim = d.tokenDim;
    this.nullClass = d.nullClass;
  }

  /**
   * Load an exported ONNX folder (causalfusion-onnx.json + .onnx files, see exportOnnx), or build the
   * graphs in memory from a model folder (model.safetensors + config.json) or a .safetensors file.
   */
  static async load(location: string, options: OrtOptions = {}): Promise<OrtDenoiser> {
    if (!fs.existsSync(location)) {
      throw new Error(`${location} does not exist; give an exported ONNX folder (${MANIFEST_FILE}) or a model folder (model.safetensors + config.json)`);
    }
    if (fs.statSync(location).isDirectory() && fs.existsSync(path.join(location, MANIFEST_FILE))) {
      const manifest = readManifest(location);
      const files = { cond: '', push: '', eps: '' };
      for (const name of ['cond', 'push', 'eps'] as const) {
        files[name] = path.join(location, manifest.graphs[name].file);
        if (!fs.existsSync(files[name])) throw new Error(`${location}: ${manifest.graphs[name].file} is missing (named by ${MANIFEST_FILE}); export the model again`);
      }
      const ort = await loadOrt();
      return new OrtDenoiser(manifest.modelConfig, ort, await createSessions(ort, files, options));
    }
    if (fs.statSync(location).isDirectory() && !fs.existsSync(path.join(location, 'model.safetensors'))) {
      throw new Error(`${location} is neither an exported ONNX folder (no ${MANIFEST_FILE}) nor a model folder (no model.safetensors)`);
    }
    const { config, weights } = readModelFolder(location);
    return OrtDenoiser.fromWeights(config, weights, options);
  }

  /** Build the graphs in memory from official weights (key -> {shape, data}). */
  static async fromWeights(config: ModelConfig, weights: Weights, options: OrtOptions = {}): Promise<OrtDenoiser> {
    return OrtDenoiser.fromGraphs(buildOnnxGraphs(config, weights), options);
  }

  /** Sessions for graphs from buildOnnxGraphs (with the weights inside the graphs). */
  static async fromGraphs(graphs: OnnxGraphs, options: OrtOptions = {}): Promise<OrtDenoiser> {
    if (graphs.externalWeights) throw new Error('fromGraphs: these graphs keep their weights in an external file; write them with exportOnnx and use OrtDenoiser.load(folder)');
    const ort = await loadOrt();
    return new OrtDenoiser(graphs.config, ort, await createSessions(ort, graphs, options));
  }

  /** Start a batch: one row per condition (class label; `null` = the null class), cond tokens into the cache. */
  async start(conditions: ReadonlyArray<number | null>): Promise<OrtDenoiserSession> {
    if (this.released) throw new Error('OrtDenoiser: used after release()');
    const R = conditions.length;
    if (R === 0) throw new Error('start: give at least one condition');
    const top = this.nullClass ?? this.config.numClasses - 1;
    const labels = new BigInt64Array(R);
    conditions.forEach((c, i) => {
      let y = c;
      if (y === null) {
        if (this.nullClass === null) {
          throw new Error(`condition ${i} is null (unconditional) but this model has no null class (classDropoutProb is 0); use cfgScale 1`);
        }
        y = this.nullClass;
      }
      if (!Number.isInteger(y) || y < 0 || y > top) {
        const nullNote = this.nullClass === null ? ' (this model has no null class: classDropoutProb is 0)' : ` (${this.nullClass} = the null class)`;
        throw new Error(`condition ${i}: label ${y} is not a class of this model; use 0..${top}${nullNote}`);
      }
      labels[i] = BigInt(y);
    });
    const out = await this.sessions.cond.run({ [IO_NAMES.labels]: new this.ort.Tensor('int64', labels, [R]) });
    const cache = new Cache(this.ort, R, this.config);
    cache.append(out);
    return this.session(cache);
  }

  private session(cache: Cache): OrtDenoiserSession {
    const { numTokens: L, tokenDim: d } = this;
    const ort = this.ort;
    const sessions = this.sessions;
    const R = cache.rows;
    const inputs = (name: string, tokens: Float32Array, positions: Int32Array, n: number): Record<string, OrtTensor> => {
      if (cache.disposed) throw new Error('the denoiser session was disposed');
      checkLength(name, tokens, R * n * d, `[rows=${R}, tokens=${n}, tokenDim=${d}]`);
      checkLength(`${name} positions`, positions, R * n, `[rows=${R}, tokens=${n}] raster indices`);
      const pos = new BigInt64Array(R * n);
      for (let i = 0; i < pos.length; i++) {
        const q = positions[i];
        if (!Number.isInteger(q) || q < 0 || q >= L) throw new Error(`${name} positions: entry ${i} is ${q}; positions are raster indices 0..${L - 1}`);
        pos[i] = BigInt(q);
      }
      return {
        [name]: new ort.Tensor('float32', tokens instanceof Float32Array ? tokens : Float32Array.from(tokens), [R, n, d]),
        [IO_NAMES.positions]: new ort.Tensor('int64', pos, [R, n]),
        ...cache.feeds(),
      };
    };
    return {
      rows: R,
      get length() {
        return cache.length;
      },
      async pushClean(tokens, positions, count) {
        if (count === 0) return;
        cache.append(await sessions.push.run(inputs(IO_NAMES.tokens, tokens, positions, count)));
      },
      async predictEps(noised, positions, count, timestep) {
        if (!Number.isFinite(timestep) || timestep < 0) throw new Error(`timestep ${timestep} is invalid; use an original diffusion timestep (0..999)`);
        const feeds = inputs(IO_NAMES.noised, noised, positions, count);
        feeds[IO_NAMES.timestep] = new ort.Tensor('float32', Float32Array.of(timestep), [1]);
        const out = await sessions.eps.run(feeds);
        return out[IO_NAMES.eps].data as Float32Array;
      },
      kvCache: () => cache.layers.map((l) => ({ k: l.k.slice(), v: l.v.slice(), shape: [R, cache.heads, cache.length, cache.headDim] })),
      dispose: () => cache.dispose(),
    };
  }

  /** Free the ORT sessions. */
  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    await Promise.all([this.sessions.cond.release(), this.sessions.push.release(), this.sessions.eps.release()]);
  }
}

/** The KV cache of a batch: per block k and v [rows, heads, length, headDim], and their ORT input tensors. */
class Cache {
  layers: { k: Float32Array; v: Float32Array }[];
  length = 0;
  disposed = false;
  readonly heads: number;
  readonly headDim: number;
  private inputs: Record<string, OrtTensor> = {};

  constructor(
    private readonly ort: Ort,
    readonly rows: number,
    private readonly config: ModelConfig,
  ) {
    this.heads = config.numHeads;
    this.headDim = derived(config).headDim;
    this.layers = Array.from({ length: config.depth }, () => ({ k: new Float32Array(0), v: new Float32Array(0) }));
  }

  /** Append the new tokens' keys/values (graph outputs key.l / value.l) along the token axis. */
  append(out: Record<string, OrtTensor>): void {
    const n = out[IO_NAMES.key(0)].dims[2];
    const R = this.rows;
    const H = this.heads;
    const hd = this.headDim;
    const P = this.length;
    const concat = (old: Float32Array, add: Float32Array): Float32Array => {
      if (P === 0) return add;
      const joined = new Float32Array(R * H * (P + n) * hd);
      for (let rh = 0; rh < R * H; rh++) {
        joined.set(old.subarray(rh * P * hd, (rh + 1) * P * hd), rh * (P + n) * hd);
        joined.set(add.subarray(rh * n * hd, (rh + 1) * n * hd), (rh * (P + n) + P) * hd);
      }
      return joined;
    };
    this.layers = this.layers.map((l, i) => ({
      k: concat(l.k, out[IO_NAMES.key(i)].data as Float32Array),
      v: concat(l.v, out[IO_NAMES.value(i)].data as Float32Array),
    }));
    this.length = P + n;
    const dims = [R, H, this.length, hd];
    this.inputs = {};
    this.layers.forEach((l, i) => {
      this.inputs[IO_NAMES.pastKey(i)] = new this.ort.Tensor('float32', l.k, dims);
      this.inputs[IO_NAMES.pastValue(i)] = new this.ort.Tensor('float32', l.v, dims);
    });
  }

  /** The cache as graph inputs past_key.l / past_value.l. */
  feeds(): Record<string, OrtTensor> {
    return { ...this.inputs };
  }

  dispose(): void {
    this.disposed = true;
    this.layers = [];
    this.inputs = {};
  }
}
