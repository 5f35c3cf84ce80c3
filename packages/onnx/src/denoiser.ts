/**
 * The ONNX graphs as a `Denoiser` for @causalfusion/sampler, run by onnxruntime-node. A batch's rows are
 * split over the engines (./engine): on the CPU by default one single-threaded ORT engine per thread, one
 * on this thread and the others in worker_threads, each holding the KV cache (per block, keys and values
 * [rows, heads, tokens, headDim]) of its rows; with `workers: 1` one engine on this thread with `threads`
 * intra-op threads. The cond graph fills a cache at start, each pushClean appends the clean tokens'
 * keys/values, and predictEps feeds it to the eps graph without changing it. The sampler does CFG itself
 * (conditions, then `null` rows).
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import type { Denoiser, DenoiserSession } from '@causalfusion/sampler';
import { derived, type ModelConfig } from '@causalfusion/config';
import { LocalEngine, type Engine, type EngineOptions, type GraphSources, type KVLayer } from './engine';
import { buildOnnxGraphs, type OnnxGraphs } from './graph';
import { MANIFEST_FILE, readManifest } from './export';
import { readModelFolder, type Weights } from './weights';
import { WorkerEngine } from './worker-engine';

export type { KVLayer } from './engine';

export interface OrtOptions {
  /** CPU threads in all (default: the cores, os.availableParallelism()). */
  threads?: number;
  /**
   * Engines the batch rows are split over, each with its own ORT sessions and threads / workers intra-op
   * threads: one on this thread, the others in worker_threads. Default on the CPU: `threads`
   * (single-threaded engines, the fastest here for sampling's many small calls); with CUDA: 1 (one
   * engine, on this thread).
   */
  workers?: number;
  /** 'cpu' (default) or 'cuda' (onnxruntime-node's CUDA execution provider, when its libraries are installed). */
  device?: 'cpu' | 'cuda';
}

export interface OrtDenoiserSession extends DenoiserSession {
  /** Tokens held in the cache (cond tokens included). */
  readonly length: number;
  readonly rows: number;
  pushClean(tokens: Float32Array, positions: Int32Array, count: number): Promise<void>;
  predictEps(noised: Float32Array, positions: Int32Array, count: number, timestep: number): Promise<Float32Array>;
  /** The cache, per block, all rows (copies; for inspection and tests). */
  kvCache(): Promise<KVLayer[]>;
  dispose(): void;
}

/** Check the options and decide the engines: how many, and the intra-op threads of each. */
function resolveOptions(options: OrtOptions): { device: 'cpu' | 'cuda'; workers: number; threadsPerEngine: number | undefined } {
  const device = options.device ?? 'cpu';
  if (device !== 'cpu' && device !== 'cuda') throw new Error(`device "${String(device)}" is not supported; use 'cpu' or 'cuda'`);
  for (const key of ['threads', 'workers'] as const) {
    const v = options[key];
    if (v !== undefined && !(Number.isInteger(v) && v >= 1)) throw new Error(`${key} must be a positive integer, got ${v}`);
  }
  const threads = options.threads ?? os.availableParallelism();
  const workers = options.workers ?? (device === 'cuda' ? 1 : threads);
  // one engine on this thread: `threads` for ORT, or ORT's own choice when the caller named none
  if (workers === 1) return { device, workers, threadsPerEngine: options.threads };
  return { device, workers, threadsPerEngine: Math.max(1, Math.floor(threads / workers)) };
}

async function createEngines(config: ModelConfig, sources: GraphSources, options: OrtOptions): Promise<Engine[]> {
  const { device, workers, threadsPerEngine } = resolveOptions(options);
  const engineOptions: EngineOptions = { device, threads: threadsPerEngine };
  if (workers === 1) return [await LocalEngine.create(config, sources, engineOptions)];
  // this thread runs one engine itself (it waits for the workers anyway), so k engines use k threads;
  // it comes first, so a batch with fewer rows than engines skips the workers' messages
  const settled = await Promise.allSettled([
    LocalEngine.create(config, sources, engineOptions),
    ...Array.from({ length: workers - 1 }, () => WorkerEngine.create(config, sources, engineOptions)),
  ]);
  const engines = settled.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
  const failed = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) {
    await Promise.all(engines.map((e) => e.release()));
    throw failed.reason;
  }
  return engines;
}

function checkLength(name: string, values: ArrayLike<number>, expected: number, layout: string): void {
  if (values == null || values.length !== expected) {
    throw new Error(`${name} has ${values == null ? 'no' : values.length} values, expected ${expected} (${layout})`);
  }
}

/** Split rows 0..R-1 into at most `parts` contiguous, near-equal ranges [start, end). */
function rowRanges(R: number, parts: number): [number, number][] {
  const k = Math.min(parts, R);
  const ranges: [number, number][] = [];
  for (let i = 0, start = 0; i < k; i++) {
    const size = Math.floor(R / k) + (i < R % k ? 1 : 0);
    ranges.push([start, start + size]);
    start += size;
  }
  return ranges;
}

export class OrtDenoiser implements Denoiser<number> {
  readonly numTokens: number;
  readonly tokenDim: number;
  /** The null class (numClasses), or null when the model has no label dropout. */
  readonly nullClass: number | null;
  private released = false;

  private constructor(
    readonly config: ModelConfig,
    private readonly engines: Engine[],
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
        if (!fs.existsSync(files[name]))
          throw new Error(`${location}: ${manifest.graphs[name].file} is missing (named by ${MANIFEST_FILE}); export the model again`);
      }
      return new OrtDenoiser(manifest.modelConfig, await createEngines(manifest.modelConfig, files, options));
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
    if (graphs.externalWeights)
      throw new Error('fromGraphs: these graphs keep their weights in an external file; write them with exportOnnx and use OrtDenoiser.load(folder)');
    return new OrtDenoiser(graphs.config, await createEngines(graphs.config, { cond: graphs.cond, push: graphs.push, eps: graphs.eps }, options));
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
    const ranges = rowRanges(R, this.engines.length);
    const shards = ranges.map(([start, end], i) => ({ engine: this.engines[i], start, end, batch: -1 }));
    const started = await Promise.allSettled(shards.map((sh) => sh.engine.start(labels.slice(sh.start, sh.end))));
    started.forEach((r, i) => {
      if (r.status === 'fulfilled') shards[i].batch = r.value;
    });
    const failed = started.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) {
      shards.forEach((sh) => sh.batch >= 0 && sh.engine.dispose(sh.batch));
      throw failed.reason;
    }
    return this.session(R, shards);
  }

  private session(R: number, shards: { engine: Engine; start: number; end: number; batch: number }[]): OrtDenoiserSession {
    const { numTokens: L, tokenDim: d } = this;
    let length = this.config.numCondTokens;
    let disposed = false;
    // (the local engine's ORT call starts from a setImmediate, after the workers' requests are posted)
    const single = shards.length === 1 && shards[0].engine instanceof LocalEngine;
    /** Check a call's inputs; per shard, its rows' values and positions (int64), in arrays of their own unless one engine runs here. */
    const split = (name: string, tokens: Float32Array, positions: Int32Array, n: number) => {
      if (disposed) throw new Error('the denoiser session was disposed');
      checkLength(name, tokens, R * n * d, `[rows=${R}, tokens=${n}, tokenDim=${d}]`);
      checkLength(`${name} positions`, positions, R * n, `[rows=${R}, tokens=${n}] raster indices`);
      const pos = new BigInt64Array(R * n);
      for (let i = 0; i < pos.length; i++) {
        const q = positions[i];
        if (!Number.isInteger(q) || q < 0 || q >= L) throw new Error(`${name} positions: entry ${i} is ${q}; positions are raster indices 0..${L - 1}`);
        pos[i] = BigInt(q);
      }
      const values = tokens instanceof Float32Array ? tokens : Float32Array.from(tokens);
      if (single) return [{ values, positions: pos }];
      return shards.map((sh) => ({
        values: values.slice(sh.start * n * d, sh.end * n * d),
        positions: pos.slice(sh.start * n, sh.end * n),
      }));
    };
    return {
      rows: R,
      get length() {
        return length;
      },
      async pushClean(tokens, positions, count) {
        if (count === 0) return;
        const parts = split('tokens', tokens, positions, count);
        await Promise.all(shards.map((sh, i) => sh.engine.push(sh.batch, parts[i].values, parts[i].positions, count)));
        length += count;
      },
      async predictEps(noised, positions, count, timestep) {
        if (!Number.isFinite(timestep) || timestep < 0) throw new Error(`timestep ${timestep} is invalid; use an original diffusion timestep (0..999)`);
        const parts = split('noised', noised, positions, count);
        const outs = await Promise.all(shards.map((sh, i) => sh.engine.eps(sh.batch, parts[i].values, parts[i].positions, count, timestep)));
        if (outs.length === 1) return outs[0];
        const eps = new Float32Array(R * count * d);
        outs.forEach((o, i) => eps.set(o, shards[i].start * count * d));
        return eps;
      },
      async kvCache() {
        const perShard = await Promise.all(shards.map((sh) => sh.engine.kvCache(sh.batch)));
        if (perShard.length === 1) return perShard[0];
        // the layout is row-major, so the shards' caches stack along the rows
        return perShard[0].map((l0, layer) => {
          const join = (key: 'k' | 'v') => {
            const out = new Float32Array(perShard.reduce((sum, s) => sum + s[layer][key].length, 0));
            let offset = 0;
            for (const s of perShard) {
              out.set(s[layer][key], offset);
              offset += s[layer][key].length;
            }
            return out;
          };
          return { k: join('k'), v: join('v'), shape: [R, l0.shape[1], l0.shape[2], l0.shape[3]] as KVLayer['shape'] };
        });
      },
      dispose: () => {
        if (disposed) return;
        disposed = true;
        shards.forEach((sh) => sh.engine.dispose(sh.batch));
      },
    };
  }

  /** Free the ORT sessions. */
  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    await Promise.all(this.engines.map((e) => e.release()));
  }

  /** The engines the rows are split over (worker_threads, or 1 on this thread). */
  get workers(): number {
    return this.engines.length;
  }
}
