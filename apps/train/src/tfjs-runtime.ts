/**
 * The tfjs runtime of the class-conditional trainer: the tfjs model on this thread plus workers - 1
 * replicas in worker_threads, each computing the gradients of a contiguous shard of the batch; the shards'
 * gradients are summed in a fixed order (shard 0 first), so the result does not depend on timing.
 */
import { initBackend, tf } from '@causalfusion/backend';
import type { ModelConfig, TrainingShard } from '@causalfusion/config';
import { createDiffusion } from '@causalfusion/diffusion';
import { CausalDiffusionModel } from '@causalfusion/transformer';
import { ReplicaPool } from './parallel';
import { shardGradients } from './shard-gradients';
import { shardRanges, sliceShard } from './step';

/**
 * Samples the main thread takes beyond an even share when there are workers: a worker loses about two
 * samples' time per step to receiving weights and sending gradients (measured with the mnist preset:
 * the main thread waited ~45 ms per step with an even split, ~8 ms with two samples more).
 */
const MAIN_EXTRA_SAMPLES = 2;

/** sum += part, elementwise; returns sum. */
function addInto(sum: Float32Array, part: Float32Array): Float32Array {
  for (let j = 0; j < sum.length; j++) sum[j] += part[j];
  return sum;
}

export async function createTfjsRuntime(config: ModelConfig, options: { workers: number; backend?: 'tensorflow' | 'wasm' | 'cpu' }) {
  const backend = await initBackend({ backend: options.backend, quiet: true });
  const model = new CausalDiffusionModel(config);
  const diffusion = createDiffusion({ respacing: '' });
  const pool = await ReplicaPool.start(options.workers - 1, config, options.backend);
  const variables = model.stateEntries().map((e) => e.variable);
  const trainableIndex = variables.map((v, i) => (v.trainable ? i : -1)).filter((i) => i >= 0);
  return {
    name: 'tfjs' as const,
    description: `tfjs ${backend}, ${options.workers} worker${options.workers > 1 ? 's' : ''}`,
    async lossAndGrads(params: Float32Array[], shard: TrainingShard) {
      tf.tidy(() => variables.forEach((v, i) => v.assign(tf.tensor(params[i], v.shape))));
      const ranges = shardRanges(shard.y.length, options.workers, MAIN_EXTRA_SAMPLES);
      const shards = ranges.map(([from, to]) => sliceShard(shard, from, to));
      const trainableParams = trainableIndex.map((i) => params[i]);
      const remote = shards.slice(1).map((sh, i) =>
        pool.run(
          i,
          trainableParams.map((w) => w.slice()),
          sh,
        ),
      );
      const results = [shardGradients(model, diffusion, shards[0]), ...(await Promise.all(remote))];
      const grads = results[0].grads;
      for (const r of results.slice(1)) {
        r.grads.forEach((part, i) => {
          if (part) grads[i] = grads[i] ? addInto(grads[i]!, part) : part;
        });
      }
      return { loss: results.reduce((a, r) => a + r.loss, 0), grads };
    },
    async close() {
      await pool.close();
      model.dispose();
    },
  };
}
