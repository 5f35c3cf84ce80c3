/**
 * The loss share and gradients of a shard of a batch on the tfjs model: what the main thread and every
 * worker replica of the tfjs runtime compute.
 */
import { tf } from '@causalfusion/backend';
import type { GaussianDiffusion } from '@causalfusion/diffusion';
import { getArWeights } from '@causalfusion/sampler';
import type { CausalDiffusionModel } from '@causalfusion/transformer';
import type { ShardInput, ShardResult } from './step';

/** The shard's loss share and gradients (as `trainStep`: loss * AR weights, mean over the batch). */
export function shardGradients(model: CausalDiffusionModel, diffusion: GaussianDiffusion, shard: ShardInput): ShardResult {
  const variables = model.trainableVariables();
  const L = model.numTokens;
  const weights = Float32Array.from(shard.arWeights ?? getArWeights(shard.splitSizes, shard.maxArWeight, shard.minArWeight, 'linear'));
  const xt = Float32Array.from(diffusion.qSample(shard.x, shard.t, shard.noise));
  const denominator = shard.batchSize * L * model.tokenDim;
  const { value, grads } = tf.variableGrads(() => {
    const { loss } = model.trainingForward(
      { x: shard.x, xn: xt, noise: shard.noise, t: shard.t, y: shard.y, splitSizes: shard.splitSizes },
      { idsShuffle: shard.idsShuffle, labelDropRand: shard.labelDropRand },
    );
    return tf.div(tf.sum(tf.mul(loss, tf.tensor3d(weights, [1, L, 1]))), denominator) as tf.Scalar;
  }, variables);
  const out = variables.map((v) => (grads[v.name] ? Float32Array.from(grads[v.name].dataSync() as Float32Array) : null));
  const loss = value.dataSync()[0];
  tf.dispose([value, ...Object.values(grads)]);
  return { loss, grads: out };
}
