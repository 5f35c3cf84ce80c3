/**
 * @causalfusion/multimodal: one CausalFusion model for text-to-image and image captioning (the paper's
 * Table 6a), the captioned MNIST-composition dataset and the image-text folder format.
 *
 * ```ts
 * const { model, codec } = loadMultimodalModel(DEFAULT_MULTIMODAL_MODEL_DIR);
 * const tokens = await generateImages(model, codec, [codec.encode('a large 3 to the left of a small 8')], { arSteps: 4 });
 * const { texts } = generateCaptions(model, codec, tokens, 1, { greedy: true });
 * ```
 */
// the data, codecs and model-folder files (also the tfjs-free `@causalfusion/multimodal/data` entry)
export * from './data';
// the framework-free rules of the model (@causalfusion/config), for users of this package
export {
  MULTIMODAL_CONFIG_FORMAT,
  multimodalConfigFromJson,
  multimodalConfigToJson,
  multimodalGeometry,
  validateMultimodalConfig,
  validateMultimodalShape,
  PAD_ID,
  BOS_ID,
  EOS_ID,
  multimodalParamEntries,
  captionMask,
  textToImageMask,
  maskToBias,
  textLossMask,
  textTargets,
  prepareTextToImageTokens,
  prepareMultimodalStep,
  DEFAULT_RECIPE,
  capArSteps,
  drawMultimodalRandomness,
} from '@causalfusion/config';
export type {
  MultimodalConfig,
  MultimodalModelShape,
  MultimodalMeta,
  MultimodalSamplingDefaults,
  ParamEntry,
  TextToImageInputs,
  TextToImageTokens,
  MultimodalBatch,
  MultimodalRandomness,
  MultimodalRecipe,
  MultimodalLossRecipe,
  MultimodalStepInputs,
} from '@causalfusion/config';
export { MultimodalModel } from './model';
export type { CaptionInputs, MultimodalParams } from './model';
export { crossEntropy, multimodalLosses, multimodalTrainStep } from './train';
export type { MultimodalLosses, MultimodalStepResult } from './train';
export { CaptionDenoiser, checkDecodeOptions, generateCaptions, generateImages, pickToken } from './generate';
export type { CaptionOptions, DecodeOptions, GenerateImageOptions } from './generate';
export { loadMultimodalModel } from './load';
export { initBackend, tf } from '@causalfusion/backend';
