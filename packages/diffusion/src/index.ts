/**
 * @causalfusion/diffusion: the Gaussian diffusion schedule of CausalFusion on plain typed arrays.
 *
 * ```ts
 * const diffusion = createDiffusion({ steps: 1000, schedule: 'linear', respacing: '250' });
 * for (const t of diffusion.samplingTimesteps()) {
 *   const eps = model(x, diffusion.timestepMap[t]); // feed the ORIGINAL timestep
 *   x = diffusion.step(eps, t, x, rng).prevSample;
 * }
 * ```
 */
export { BETA_SCHEDULES, getNamedBetaSchedule, spaceTimesteps } from './schedule';
export type { BetaScheduleName } from './schedule';
export { GaussianDiffusion, createDiffusion, VARIANCE_TYPES } from './diffusion';
export type { DiffusionOptions, MeanVariance, NormalSource, StepOptions, StepResult, Timesteps, VarianceType } from './diffusion';
