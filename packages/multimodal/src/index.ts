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
export {
  CaptionedDataset, captionedDataset, captionOf, sceneOf, renderScene, digitBank,
  CANVAS_HEIGHT, CANVAS_WIDTH, SLOT, SMALL, CAPTION_WORDS, CAPTIONS_PER_SCENE, DIGIT_WORDS,
} from './scenes';
export type { CaptionedItem, CaptionedDatasetOptions, DigitBank, DigitSize, Scene, SceneDigit, SceneSplit, Side, VerticalPos } from './scenes';
export {
  CaptionCodec, loadCaptionTokenizer, trainCaptionTokenizer, normalizeCaption, DEFAULT_TOKENIZER_FILE, PAD, BOS, EOS, SPECIAL_TOKENS,
} from './text';
// the framework-free rules of the model (@causalfusion/config), for users of this package
export {
  MULTIMODAL_CONFIG_FORMAT, multimodalConfigFromJson, multimodalConfigToJson, multimodalGeometry, validateMultimodalConfig, validateMultimodalShape,
  PAD_ID, BOS_ID, EOS_ID, multimodalParamEntries, captionMask, textToImageMask, maskToBias, textLossMask, textTargets,
  prepareTextToImageTokens, prepareMultimodalStep, DEFAULT_RECIPE, capArSteps, drawMultimodalRandomness,
} from '@causalfusion/config';
export type {
  MultimodalConfig, MultimodalModelShape, MultimodalMeta, ParamEntry, TextToImageInputs, TextToImageTokens, MultimodalBatch, MultimodalRandomness,
  MultimodalRecipe, MultimodalStepInputs,
} from '@causalfusion/config';
export { MultimodalModel } from './model';
export type { CaptionInputs, MultimodalParams } from './model';
export { crossEntropy, multimodalLosses, multimodalTrainStep } from './train';
export type { MultimodalLosses, MultimodalStepResult } from './train';
export { CaptionDenoiser, checkDecodeOptions, generateCaptions, generateImages, pickToken } from './generate';
export type { CaptionOptions, DecodeOptions, GenerateImageOptions } from './generate';
export { CanvasCodec } from './canvas';
export { saveMultimodalModel, loadMultimodalModel, readMultimodalFolder, DEFAULT_MULTIMODAL_MODEL_DIR } from './checkpoint';
export { readImageTextFolder, writeImageTextFolder, CAPTIONS_FILE } from './folder';
export type { ImageTextItem } from './folder';
export { readSlots, checkFaithfulness } from './read';
export type { SlotReading, CaptionClaims, FaithfulnessCheck } from './read';
export { initBackend, tf } from '@causalfusion/backend';
