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
// the tfjs-free rules (also the `@causalfusion/multimodal/layout` entry)
export {
  CONFIG_FORMAT, multimodalConfigFromJson, multimodalConfigToJson, multimodalGeometry, validateMultimodalConfig, validateMultimodalShape,
  PAD_ID, BOS_ID, EOS_ID, multimodalParamEntries, captionMask, textToImageMask, maskToBias, textLossMask, textTargets,
} from './layout';
export type { MultimodalConfig, MultimodalModelShape, MultimodalParamEntry } from './layout';
export { MultimodalModel, sincos2d } from './model';
export type { CaptionInputs, MultimodalParams, MultimodalStateEntry, TextToImageInputs } from './model';
export { DEFAULT_RECIPE, capArSteps, crossEntropy, drawMultimodalRandomness, multimodalLosses, multimodalTrainStep } from './train';
export type { MultimodalBatch, MultimodalLosses, MultimodalRandomness, MultimodalRecipe, MultimodalStepResult } from './train';
export { CaptionDenoiser, checkDecodeOptions, generateCaptions, generateImages, pickToken } from './generate';
export type { CaptionOptions, DecodeOptions, GenerateImageOptions } from './generate';
export { CanvasCodec } from './canvas';
export {
  saveMultimodalModel, loadMultimodalModel, readMultimodalFolder, DEFAULT_MULTIMODAL_MODEL_DIR,
  MODEL_WEIGHTS_FILE, MODEL_CONFIG_FILE, MODEL_TOKENIZER_FILE, MODEL_META_FILE,
} from './checkpoint';
export type { MultimodalMeta } from './checkpoint';
export { readImageTextFolder, writeImageTextFolder, CAPTIONS_FILE } from './folder';
export type { ImageTextItem } from './folder';
export { readSlots, checkFaithfulness } from './read';
export type { SlotReading, CaptionClaims, FaithfulnessCheck } from './read';
export { initBackend, tf } from '@causalfusion/backend';
