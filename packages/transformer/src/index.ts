/**
 * @causalfusion/transformer: the official CausalFusion transformer (`CausalDiffusionModel`) in tfjs.
 *
 * ```ts
 * await initBackend();
 * const model = await loadModel('checkpoints/CausalFusion-XL'); // model.safetensors + config.json
 * const cache = model.createCache([207, 360, 1000, 1000]);     // labels, then null classes for CFG
 * const { eps } = model.forwardInference(xn, 500, cache, positions, 16, 4.0);
 * ```
 *
 * The config, the parameter table, token preparation and the host-side optimizer are @causalfusion/config's
 * (no tfjs); the few a user of this package needs are re-exported here.
 */
export { DEFAULT_CONFIG, PRESETS, makeConfig, validateConfig, derived, configToJson, configFromJson, patchify, unpatchify } from '@causalfusion/config';
export type { ModelConfig, PresetName, TrainingInputs, TrainingRandomness } from '@causalfusion/config';
export { CausalDiffusionModel } from './model';
export type { CreateModelOptions, InferenceResult, ModelParams, TrainingForwardResult } from './model';
export { applyHead, embeddingRows, KVCache, ParamStore, timestepEmbed, transformerBlock, TransformerBody } from './layers';
export type { BlockDims, BlockParams, BodyParams, HeadParams, LayerNormParams, LinearParams, StateEntry } from './layers';
export { loadModel, saveModel } from './checkpoint';
export type { LoadModelOptions } from './checkpoint';
export { TransformerDenoiser, createDenoiser } from './denoiser';
export { AdamW, clipGradNorm, trainStep, trainingLosses } from './train';
export type { TrainStepOptions, TrainStepResult, TrainingLossInputs } from './train';
export { convBatchMatMul, geluTanh, layerNorm, linear, matMul, silu } from './ops';
export { initBackend, tf } from '@causalfusion/backend';
