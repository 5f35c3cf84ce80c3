/**
 * The initial weights of a model, without a tensor library: each parameter's init rule (./layers: xavier-uniform
 * Linear weights, zero biases, LayerNorm weights 1, N(0, 0.02) embedding tables, the 2-D sin-cos position
 * table, a zero final Linear) drawn from one seeded stream in entries order, so every runtime starts a run
 * from the same values.
 */
import { createRng, type Rng } from '@causalfusion/rng';
import { sincosPosEmbed2d } from './embeddings';
import { sizeOf, type ParamEntry } from './layers';

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

/** Initial weights in entries order and training layout. */
export function initialWeights(entries: readonly ParamEntry[], seed: number | string = 0): Float32Array[] {
  const rng = createRng(seed);
  return entries.map((e) => {
    const size = sizeOf(e.shape);
    switch (e.init) {
      case 'sincos':
        if (!e.grid) throw new Error(`internal: ${e.key} has no token grid`);
        return sincosPosEmbed2d(e.shape[e.shape.length - 1], e.grid.height, e.grid.width);
      case 'normal':
        return normalArray(rng, size, 0.02);
      case 'xavier':
        return xavierUniform(rng, e.shape[0], e.shape[1]);
      case 'ones':
        return new Float32Array(size).fill(1);
      case 'zeros':
        return new Float32Array(size);
    }
  });
}
