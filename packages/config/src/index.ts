/**
 * @causalfusion/config: everything about the CausalFusion models that needs no tensor library, shared by
 * the tfjs models (@causalfusion/transformer, @causalfusion/multimodal), the ONNX graphs
 * (@causalfusion/onnx), the training app and the CLI. Loading it loads neither tfjs nor onnxruntime.
 *
 * ```ts
 * const config = makeConfig('CausalFusion-Tiny');
 * const entries = trainingEntries(config);          // keys, official and training shapes, init rules
 * const weights = initialWeights(entries, 0);       // the values every runtime starts from
 * const tokens = prepareTrainingTokens(config, inputs, { rng }); // the training forward's host half
 * ```
 */
export {
  DEFAULT_CONFIG,
  PRESETS,
  MAX_PARAMETERS,
  makeConfig,
  validateConfig,
  parameterCount,
  derived,
  configToJson,
  configFromJson,
  readConfigFile,
  trainingEntries,
  officialShapes,
  checkStateDict,
} from './config';
export type { ModelConfig, PresetName } from './config';
export {
  BODY_KEYS,
  CLASS_KEYS,
  MULTIMODAL_KEYS,
  TIMESTEP_FREQUENCIES,
  ParamTable,
  blockKeys,
  sizeOf,
  transpose2d,
  toTrainingLayout,
  toOfficialLayout,
  officialStateDict,
  trainingArrays,
  checkStateEntries,
} from './layers';
export type { BlockKeys, BodyDims, InitRule, LayoutEntry, ParamEntry, StateDict } from './layers';
export { get2dSincosPosEmbed, sincosPosEmbed2d, timestepSinusoid, timestepFrequencies } from './embeddings';
export { initialWeights, normalArray, xavierUniform } from './init';
export { checkLength, checkPermutations, maskToBias, patchify, prepareTrainingTokens, shuffledPositions, shuffleTokens, unpatchify } from './tokens';
export type { PreparedTokens, TrainingInputs, TrainingRandomness, TrainingShard } from './tokens';
export { adamwUpdate, clipGradArrays, HostAdamW, updateEmaArrays } from './optim';
export type { AdamWOptions, AdamWState, GradientArrays } from './optim';
export {
  MULTIMODAL_CONFIG_FORMAT,
  PAD_ID,
  BOS_ID,
  EOS_ID,
  DEFAULT_RECIPE,
  multimodalGeometry,
  validateMultimodalShape,
  validateMultimodalConfig,
  multimodalConfigToJson,
  multimodalConfigFromJson,
  multimodalParamEntries,
  textToImageMask,
  captionMask,
  textLossMask,
  textTargets,
  checkTextIds,
  prepareTextToImageTokens,
  prepareMultimodalStep,
  drawMultimodalRandomness,
  capArSteps,
  imageLossWeights,
} from './multimodal';
export type {
  MultimodalConfig,
  MultimodalModelShape,
  TextToImageInputs,
  TextToImageTokens,
  MultimodalRecipe,
  MultimodalLossRecipe,
  MultimodalBatch,
  MultimodalRandomness,
  MultimodalStepInputs,
  MultimodalStepTokens,
} from './multimodal';
export {
  WEIGHTS_FILE,
  CONFIG_FILE,
  META_FILE,
  TOKENIZER_FILE,
  MODEL_META_FORMAT,
  MULTIMODAL_META_FORMAT,
  parseModelMeta,
  parseMultimodalMeta,
  writeModelFolder,
} from './files';
export type {
  LatentMeta,
  ModelFolderFiles,
  ModelMeta,
  SamplingDefaults,
  MultimodalMeta,
  MultimodalSamplingDefaults,
  PixelMeta,
  TrainingRecord,
  VaeMeta,
} from './files';
