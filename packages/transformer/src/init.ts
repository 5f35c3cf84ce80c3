/**
 * The initial weights of a model, without tfjs: the official init rules (xavier-uniform Linear weights,
 * zero biases, N(0, 0.02) label table and cond_pos_embed, 2-D sin-cos pos_embed, a zero final Linear) drawn
 * from one seeded stream in a fixed order, so every runtime starts a run from the same values.
 */
import { createRng, type Rng } from '@causalfusion/rng';
import { derived, trainingEntries, type ModelConfig } from './config';
import { get2dSincosPosEmbed } from './embeddings';

/** xavier_uniform_ for a [fanIn, fanOut] (training layout) weight. */
export function xavierUniform(rng: Rng, fanIn: number, fanOut: number): Float32Array {
  const bound = Math.sqrt(6 / (fanIn + fanOut));
  const out = new Float32Array(fanIn * fanOut);
  for (let i = 0; i < out.length; i++) out[i] = rng.uniform(-bound, bound);
  return out;
}

/** n draws of N(0, std^2). */
export function normalArray(rng: Rng, n: number, std: number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = std * rng.normal();
  return out;
}

/** Initial weights in trainingEntries order and training layout (Linear weights [in, out]). */
export function initialWeights(config: ModelConfig, seed: number | string = 0): Float32Array[] {
  const rng = createRng(seed);
  const d = derived(config);
  const D = config.hiddenSize;
  return trainingEntries(config).map((e) => {
    const size = e.shape.reduce((a, b) => a * b, 1);
    if (e.key === 'pos_embed') return get2dSincosPosEmbed(D, d.grid);
    if (e.key === 'cond_pos_embed' || e.key === 'y_embedder.embedding_table.weight') return normalArray(rng, size, 0.02);
    // the official init zeroes the final Linear layer
    if (e.transposed) return e.key === 'final_layer.1.weight' ? new Float32Array(size) : xavierUniform(rng, e.shape[0], e.shape[1]);
    // LayerNorm weights start at 1, every bias at 0
    const isNormWeight = e.key.endsWith('.weight') && !e.transposed;
    return isNormWeight ? new Float32Array(size).fill(1) : new Float32Array(size);
  });
}
