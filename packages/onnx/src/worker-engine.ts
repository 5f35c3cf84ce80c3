/**
 * An engine in a worker_thread: its own ORT sessions (single-threaded by default) and the KV caches of
 * its share of the rows. ORT runs a call on the thread that makes it, so N workers run N calls at once;
 * for the small calls of AR sampling this beats one session with N intra-op threads, which synchronise
 * inside every op (measured in bench/sample).
 */
import * as fs from 'fs';
import * as path from 'path';
import { Worker } from 'worker_threads';
import type { ModelConfig } from '@causalfusion/config';
import type { Engine, EngineOptions, GraphSources, KVLayer } from './engine';

export type WorkerRequest =
  | { op: 'init'; config: ModelConfig; sources: GraphSources; options: EngineOptions }
  | { op: 'start'; labels: BigInt64Array }
  | { op: 'push'; batch: number; tokens: Float32Array; positions: BigInt64Array; n: number }
  | { op: 'eps'; batch: number; noised: Float32Array; positions: BigInt64Array; n: number; timestep: number }
  | { op: 'kv'; batch: number }
  | { op: 'dispose'; batch: number }
  | { op: 'release' };

export type WorkerReply = { id: number; ok: true; value: unknown } | { id: number; ok: false; message: string };

/** The compiled worker: beside this file in dist/, or in dist/ when running from src/ (tests). */
function workerScript(): string {
  const candidates = [path.join(__dirname, 'worker.js'), path.join(__dirname, '..', 'dist', 'worker.js')];
  const found = candidates.find((f) => fs.existsSync(f));
  if (!found) throw new Error(`ORT workers need the compiled worker (${candidates[1]}); build first: pnpm exec turbo run build --filter @causalfusion/onnx`);
  return found;
}

/** Copy a view into its own buffer (a transferred or cloned view would carry its whole buffer). */
export function own<T extends Float32Array | BigInt64Array>(a: T): T {
  return (a.byteOffset === 0 && a.byteLength === a.buffer.byteLength ? a : a.slice()) as T;
}

export class WorkerEngine implements Engine {
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  private nextId = 0;
  private failure: Error | null = null;

  private constructor(private readonly worker: Worker) {
    // an idle worker does not keep the process alive (a caller that forgets release() still exits);
    // it is ref'd while a request is pending, so awaiting its reply does
    worker.unref();
    worker.on('message', (reply: WorkerReply) => {
      const p = this.pending.get(reply.id);
      this.pending.delete(reply.id);
      if (this.pending.size === 0) worker.unref();
      if (reply.ok) p?.resolve(reply.value);
      else p?.reject(new Error(reply.message));
    });
    const fail = (err: Error) => {
      this.failure = err;
      for (const p of this.pending.values()) p.reject(err);
      this.pending.clear();
    };
    worker.on('error', fail);
    worker.on('exit', (code) => fail(new Error(`an ORT worker exited (code ${code})`)));
  }

  static async create(config: ModelConfig, sources: GraphSources, options: EngineOptions): Promise<WorkerEngine> {
    const engine = new WorkerEngine(new Worker(workerScript()));
    try {
      await engine.request({ op: 'init', config, sources, options });
    } catch (err) {
      await engine.worker.terminate();
      throw err;
    }
    return engine;
  }

  private request<T>(msg: WorkerRequest, transfer: ArrayBuffer[] = []): Promise<T> {
    if (this.failure) return Promise.reject(this.failure);
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.worker.ref();
      this.worker.postMessage({ id, ...msg }, transfer);
    });
  }

  start(labels: BigInt64Array): Promise<number> {
    return this.request({ op: 'start', labels: own(labels) });
  }

  // push and eps transfer their arrays to the worker: the caller passes arrays it does not use again
  push(batch: number, tokens: Float32Array, positions: BigInt64Array, n: number): Promise<void> {
    const t = own(tokens);
    const p = own(positions);
    return this.request({ op: 'push', batch, tokens: t, positions: p, n }, [t.buffer as ArrayBuffer, p.buffer as ArrayBuffer]);
  }

  eps(batch: number, noised: Float32Array, positions: BigInt64Array, n: number, timestep: number): Promise<Float32Array> {
    const x = own(noised);
    const p = own(positions);
    return this.request({ op: 'eps', batch, noised: x, positions: p, n, timestep }, [x.buffer as ArrayBuffer, p.buffer as ArrayBuffer]);
  }

  kvCache(batch: number): Promise<KVLayer[]> {
    return this.request({ op: 'kv', batch });
  }

  dispose(batch: number): void {
    if (!this.failure) this.request({ op: 'dispose', batch }).catch(() => undefined);
  }

  async release(): Promise<void> {
    if (!this.failure) await this.request({ op: 'release' }).catch(() => undefined);
    this.failure ??= new Error('the ORT worker was released');
    await this.worker.terminate();
  }
}
