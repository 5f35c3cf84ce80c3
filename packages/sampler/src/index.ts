/**
 * @causalfusion/sampler: CausalFusion's dual factorization (AR steps x diffusion) for training and
 * sampling, over any backbone that implements the small {@link Denoiser} interface.
 */
export type { Denoiser, DenoiserSession } from './denoiser';
export { cumsum, checkSplitSizes, equalSplits, splitIntegerExpDecay, getAttnMask, getArWeights } from './factorization';
export type { ArWeightSchedule } from './factorization';
export { tokenOrder, checkOrder, editRegion, ORDER_NAMES, EDIT_REGIONS } from './orders';
export type { OrderName, OrderOptions, EditRegionName } from './orders';
export { sample, edit } from './sampler';
export type { SampleOptions, EditOptions, SampleResult, SampleProgress, SamplerStats, Intermediate } from './sampler';
