/**
 * Data-parallel replicas on worker_threads (wasm threads do not run in Node; workers do). With
 * `--workers N` the main thread computes shard 0 and N-1 workers the others, so N cores are busy; the
 * main thread sums the gradients, applies AdamW and sends the new weights with the next shard.
 */
import * as fs from 'fs';
import * as path from 'path';
import { Worker } from 'worker_threads';
import type { ModelConfig } from '@causalfusion/config';
import type { ShardInput, ShardResult } from './step';

/** The messages between the pool and a replica (./worker). */
export type WorkerRequest =
  { type: 'init'; modelConfig: ModelConfig; backend?: 'tensorflow' | 'wasm' | 'cpu' } | { type: 'step'; weights: Float32Array[]; shard: ShardInput };

export type WorkerReply = { type: 'ready' } | { type: 'result'; loss: number; grads: (Float32Array | null)[] } | { type: 'error'; message: string };

/** The compiled worker: beside this file in dist/, or in dist/ when running from src/ (tests). */
function workerScript(): string {
  const candidates = [path.join(__dirname, 'worker.js'), path.join(__dirname, '..', 'dist', 'worker.js')];
  const found = candidates.find((f) => fs.existsSync(f));
  if (!found) {
    throw new Error(`--workers needs the compiled worker (${candidates[1]}); build first: pnpm exec turbo run build --filter @causalfusion/train...`);
  }
  return found;
}

class Replica {
  private pending: { resolve: (r: WorkerReply) => void; reject: (e: Error) => void } | null = null;
  private failure: Error | null = null;

  constructor(readonly worker: Worker) {
    worker.on('message', (reply: WorkerReply) => {
      const p = this.pending;
      this.pending = null;
      p?.resolve(reply);
    });
    const fail = (err: Error) => {
      this.failure = err;
      const p = this.pending;
      this.pending = null;
      p?.reject(err);
    };
    worker.on('error', fail);
    worker.on('exit', (code) => {
      if (code !== 0) fail(new Error(`a training worker exited with code ${code}`));
    });
  }

  request(msg: WorkerRequest, transfer: ArrayBuffer[] = []): Promise<WorkerReply> {
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      this.pending = { resolve, reject };
      this.worker.postMessage(msg, transfer);
    }).then((reply) => {
      const r = reply as WorkerReply;
      if (r.type === 'error') throw new Error(`training worker: ${r.message}`);
      return r;
    });
  }
}

export class ReplicaPool {
  private constructor(private readonly replicas: Replica[]) {}

  /** Start `count` workers, each with a model of `modelConfig` (weights come with every step). */
  static async start(count: number, modelConfig: ModelConfig, backend?: 'tensorflow' | 'wasm' | 'cpu'): Promise<ReplicaPool> {
    const script = count > 0 ? workerScript() : '';
    const replicas = Array.from({ length: count }, () => new Replica(new Worker(script)));
    const pool = new ReplicaPool(replicas);
    try {
      await Promise.all(replicas.map((r) => r.request({ type: 'init', modelConfig, backend })));
    } catch (err) {
      await pool.close();
      throw err;
    }
    return pool;
  }

  get size(): number {
    return this.replicas.length;
  }

  /**
   * Replica i computes a shard with the given weights (trainable variables, in order). The weights and
   * the shard's arrays are transferred, not copied: they are unusable here afterwards, so give each
   * replica its own weight arrays.
   */
  async run(i: number, weights: Float32Array[], shard: ShardInput): Promise<ShardResult> {
    const transfer = [...weights, shard.x, shard.y, shard.t, shard.noise, shard.idsShuffle, shard.labelDropRand].map((a) => a.buffer as ArrayBuffer);
    const reply = await this.replicas[i].request({ type: 'step', weights, shard }, transfer);
    if (reply.type !== 'result') throw new Error(`training worker: unexpected reply ${reply.type}`);
    return { loss: reply.loss, grads: reply.grads };
  }

  async close(): Promise<void> {
    await Promise.all(this.replicas.map((r) => r.worker.terminate()));
  }
}
