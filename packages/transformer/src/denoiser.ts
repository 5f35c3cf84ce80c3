/**
 * The transformer as a `Denoiser` for @causalfusion/sampler. The sampler does classifier-free guidance
 * itself (conditions followed by `null`s), so the session only maps `null` to the null class and runs
 * the KV cache: cond tokens at start, clean tokens on push, eps for noised tokens on predict.
 */
import type { Denoiser, DenoiserSession } from '@causalfusion/sampler';
import type { CausalDiffusionModel } from './model';

export class TransformerDenoiser implements Denoiser<number> {
  readonly numTokens: number;
  readonly tokenDim: number;

  constructor(readonly model: CausalDiffusionModel) {
    this.numTokens = model.numTokens;
    this.tokenDim = model.tokenDim;
  }

  start(conditions: ReadonlyArray<number | null>): DenoiserSession {
    const model = this.model;
    const labels = conditions.map((c, i) => {
      if (c !== null) return c;
      if (model.nullClass === null) {
        throw new Error(`condition ${i} is null (unconditional) but this model has no null class (classDropoutProb is 0); use cfgScale 1`);
      }
      return model.nullClass;
    });
    const cache = model.createCache(labels);
    return {
      pushClean: (tokens, positions, count) => model.pushClean(cache, tokens, positions, count),
      predictEps: (noised, positions, count, timestep) => model.predictEps(cache, noised, positions, count, timestep),
      dispose: () => cache.dispose(),
    };
  }
}

/** `new TransformerDenoiser(model)`. */
export function createDenoiser(model: CausalDiffusionModel): TransformerDenoiser {
  return new TransformerDenoiser(model);
}
