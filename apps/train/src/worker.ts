/**
 * A data-parallel replica (worker_threads): holds its own model and tfjs backend; per step it takes
 * the current weights and a shard of the batch and returns the shard's loss share and gradients.
 */
import { parentPort } from 'worker_threads';
import { initBackend, tf } from '@causalfusion/backend';
import { createDiffusion } from '@causalfusion/diffusion';
import type { ModelConfig } from '@causalfusion/config';
import { CausalDiffusionModel } from '@causalfusion/transformer';
import type { ShardInput } from './step';
import { shardGradients } from './shard-gradients';
import type { WorkerReply, WorkerRequest } from './parallel';

let model: CausalDiffusionModel | null = null;
const diffusion = createDiffusion({ respacing: '' });

async function handle(msg: WorkerRequest): Promise<{ reply: WorkerReply; transfer: ArrayBuffer[] }> {
  if (msg.type === 'init') {
    await initBackend({ backend: msg.backend, quiet: true });
    model = new CausalDiffusionModel(msg.modelConfig);
    return { reply: { type: 'ready' }, transfer: [] };
  }
  if (!model) throw new Error('replica: step before init');
  const variables = model.trainableVariables();
  tf.tidy(() => variables.forEach((v, i) => v.assign(tf.tensor(msg.weights[i], v.shape))));
  const { loss, grads } = shardGradients(model, diffusion, msg.shard);
  const transfer = grads.filter((g): g is Float32Array => g !== null).map((g) => g.buffer as ArrayBuffer);
  return { reply: { type: 'result', loss, grads }, transfer };
}

if (parentPort) {
  const port = parentPort;
  port.on('message', (msg: WorkerRequest) => {
    handle(msg).then(
      ({ reply, transfer }) => port.postMessage(reply, transfer),
      (err: unknown) => port.postMessage({ type: 'error', message: (err as Error).message ?? String(err) } satisfies WorkerReply),
    );
  });
}
