/**
 * @causalfusion/transformer: the official CausalFusion transformer (`CausalDiffusionModel`) in tfjs.
 *
 * ```ts
 * await initBackend();
 * const model = await loadModel('checkpoints/CausalFusion-XL'); // model.safetensors + config.json
 * const cache = model.createCache([207, 360, 1000, 1000]);     // labels, then null classes for CFG
 * const { eps } = model.forwardInference(xn, 500, cache, positions, 16, 4.0);
 * ```
 */
export { DEFAULT_CONFIG, PRESETS, makeConfig, validateConfig, derived, configToJson, configFromJson, officialShapes, checkStateDict, trainingEntries, toTrainingLayout, toOfficialLayout, transpose2d } from './config';
export type { ModelConfig, PresetName, TrainingEntry } from './config';
export { prepareTrainingTokens } from './tokens';
export { initialWeights } from './init';
export type { PreparedTokens, TrainingShard } from './tokens';
export { blockParams, CausalDiffusionModel, KVCache, patchify, unpatchify, transformerBlock, embeddingRows } from './model';
export type {
  BlockDims,
  BlockParams,
  CreateModelOptions,
  InferenceResult,
  LayerNormParams,
  LinearParams,
  ModelParams,
  StateEntry,
  TrainingForwardResult,
  TrainingInputs,
  TrainingRandomness,
} from './model';
export { get2dSincosPosEmbed, timestepSinusoid } from './embeddings';
export { loadModel, saveModel, WEIGHTS_FILE, CONFIG_FILE } from './checkpoint';
export type { LoadModelOptions } from './checkpoint';
export { TransformerDenoiser, createDenoiser } from './denoiser';
export { AdamW, clipGradNorm, trainStep, trainingLosses } from './train';
export type { TrainStepOptions, TrainStepResult, TrainingLossInputs } from './train';
export { adamwUpdate, clipGradArrays, HostAdamW, updateEmaArrays } from './optim';
export type { AdamWOptions, AdamWState, GradientArrays } from './optim';
export { convBatchMatMul, geluTanh, layerNorm, linear, matMul } from './ops';
export { initBackend, tf } from '@causalfusion/backend';
