/** The worker_thread side of WorkerEngine: one LocalEngine, driven by messages. */
import { parentPort } from 'worker_threads';
import { LocalEngine } from './engine';
import { own, type WorkerReply, type WorkerRequest } from './worker-engine';

let engine: LocalEngine | null = null;

async function handle(msg: WorkerRequest): Promise<{ value: unknown; transfer: ArrayBuffer[] }> {
  if (msg.op === 'init') {
    engine = await LocalEngine.create(msg.config, msg.sources, msg.options);
    return { value: null, transfer: [] };
  }
  if (!engine) throw new Error('ORT worker: used before init');
  switch (msg.op) {
    case 'start':
      return { value: await engine.start(msg.labels), transfer: [] };
    case 'push':
      await engine.push(msg.batch, msg.tokens, msg.positions, msg.n);
      return { value: null, transfer: [] };
    case 'eps': {
      const eps = own(await engine.eps(msg.batch, msg.noised, msg.positions, msg.n, msg.timestep));
      return { value: eps, transfer: [eps.buffer as ArrayBuffer] };
    }
    case 'kv':
      return { value: await engine.kvCache(msg.batch), transfer: [] };
    case 'dispose':
      engine.dispose(msg.batch);
      return { value: null, transfer: [] };
    case 'release':
      await engine.release();
      engine = null;
      return { value: null, transfer: [] };
  }
}

if (parentPort) {
  const port = parentPort;
  port.on('message', (msg: WorkerRequest & { id: number }) => {
    handle(msg).then(
      ({ value, transfer }) => port.postMessage({ id: msg.id, ok: true, value } satisfies WorkerReply, transfer),
      (err: unknown) => port.postMessage({ id: msg.id, ok: false, message: (err as Error)?.message ?? String(err) } satisfies WorkerReply),
    );
  });
}
