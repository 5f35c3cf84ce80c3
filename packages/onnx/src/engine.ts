/**
 * An engine runs the three graphs (cond, push, eps) in ONE set of ORT sessions and keeps the KV caches of
 * the batches started on it. OrtDenoiser drives one engine on the calling thread, or several in
 * worker_threads (each with its own sessions and a share of the batch rows: see ./worker-engine).
 * Inputs arrive checked (OrtDenoiser validates them); the engine only runs the graphs.
 */
import { derived, type ModelConfig } from '@causalfusion/config';
import { createSession, loadOrt, type Device, type InferenceSession, type Ort, type OrtTensor } from '@causalfusion/ort';
import { IO_NAMES, type GraphName } from './graph';

/** Where each graph comes from: a file path or the serialized model. */
export type GraphSources = Record<GraphName, string | Uint8Array>;

export interface EngineOptions {
  /** Intra-op threads of each session; default: ORT's choice (one per core). */
  threads?: number;
  device: Device;
}

/** One layer of the cache in the official layout: k (after k_norm) and v, [rows, heads, tokens, headDim]. */
export interface KVLayer {
  k: Float32Array;
  v: Float32Array;
  shape: [number, number, number, number];
}

/** What OrtDenoiser needs of an engine, on this thread or another. Batches are named by the id start() returns. */
export interface Engine {
  start(labels: BigInt64Array): Promise<number>;
  push(batch: number, tokens: Float32Array, positions: BigInt64Array, n: number): Promise<void>;
  eps(batch: number, noised: Float32Array, positions: BigInt64Array, n: number, timestep: number): Promise<Float32Array>;
  kvCache(batch: number): Promise<KVLayer[]>;
  dispose(batch: number): void;
  release(): Promise<void>;
}

/** The engine of the calling thread. */
export class LocalEngine implements Engine {
  private readonly batches = new Map<number, Cache>();
  private nextId = 0;

  private constructor(
    private readonly ort: Ort,
    private readonly config: ModelConfig,
    private readonly sessions: Record<GraphName, InferenceSession>,
  ) {}

  static async create(config: ModelConfig, sources: GraphSources, options: EngineOptions): Promise<LocalEngine> {
    const created: Partial<Record<GraphName, InferenceSession>> = {};
    try {
      for (const name of ['cond', 'push', 'eps'] as const)
        created[name] = await createSession(sources[name], { device: options.device, threads: options.threads });
    } catch (err) {
      await Promise.all(Object.values(created).map((s) => s.release()));
      throw err;
    }
    return new LocalEngine(loadOrt(), config, created as Record<GraphName, InferenceSession>);
  }

  private cache(batch: number): Cache {
    const cache = this.batches.get(batch);
    if (!cache) throw new Error('the denoiser session was disposed');
    return cache;
  }

  async start(labels: BigInt64Array): Promise<number> {
    const out = await this.sessions.cond.run({ [IO_NAMES.labels]: new this.ort.Tensor('int64', labels, [labels.length]) });
    const cache = new Cache(this.ort, labels.length, this.config);
    cache.append(out);
    const id = this.nextId++;
    this.batches.set(id, cache);
    return id;
  }

  private feeds(cache: Cache, name: string, tokens: Float32Array, positions: BigInt64Array, n: number): Record<string, OrtTensor> {
    const R = cache.rows;
    return {
      [name]: new this.ort.Tensor('float32', tokens, [R, n, tokens.length / (R * n)]),
      [IO_NAMES.positions]: new this.ort.Tensor('int64', positions, [R, n]),
      ...cache.feeds(),
    };
  }

  async push(batch: number, tokens: Float32Array, positions: BigInt64Array, n: number): Promise<void> {
    const cache = this.cache(batch);
    cache.append(await this.sessions.push.run(this.feeds(cache, IO_NAMES.tokens, tokens, positions, n)));
  }

  async eps(batch: number, noised: Float32Array, positions: BigInt64Array, n: number, timestep: number): Promise<Float32Array> {
    const feeds = this.feeds(this.cache(batch), IO_NAMES.noised, noised, positions, n);
    feeds[IO_NAMES.timestep] = new this.ort.Tensor('float32', Float32Array.of(timestep), [1]);
    const out = await this.sessions.eps.run(feeds);
    return out[IO_NAMES.eps].data as Float32Array;
  }

  async kvCache(batch: number): Promise<KVLayer[]> {
    const c = this.cache(batch);
    return c.layers.map((l) => ({ k: l.k.slice(), v: l.v.slice(), shape: [c.rows, c.heads, c.length, c.headDim] }));
  }

  dispose(batch: number): void {
    this.batches.delete(batch);
  }

  async release(): Promise<void> {
    this.batches.clear();
    await Promise.all([this.sessions.cond.release(), this.sessions.push.release(), this.sessions.eps.release()]);
  }
}

/** The KV cache of a batch: per block k and v [rows, heads, length, headDim], and their ORT input tensors. */
class Cache {
  layers: { k: Float32Array; v: Float32Array }[];
  length = 0;
  readonly heads: number;
  readonly headDim: number;
  private inputs: Record<string, OrtTensor> = {};

  constructor(
    private readonly ort: Ort,
    readonly rows: number,
    config: ModelConfig,
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
}
