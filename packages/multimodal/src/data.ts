/**
 * `@causalfusion/multimodal/data`: everything of this package that needs no tfjs: the captioned dataset,
 * the caption and canvas codecs, the image-text folder format, and writing / reading a model folder's
 * files. The training app's onnxruntime path and the CLI's input checks load this entry only.
 */
export {
  CaptionedDataset,
  captionedDataset,
  captionOf,
  sceneOf,
  renderScene,
  digitBank,
  CANVAS_HEIGHT,
  CANVAS_WIDTH,
  SLOT,
  SMALL,
  CAPTION_WORDS,
  CAPTIONS_PER_SCENE,
  DIGIT_WORDS,
} from './scenes';
export type { CaptionedItem, CaptionedDatasetOptions, DigitBank, DigitSize, Scene, SceneDigit, SceneSplit, Side, VerticalPos } from './scenes';
export { CaptionCodec, loadCaptionTokenizer, trainCaptionTokenizer, normalizeCaption, DEFAULT_TOKENIZER_FILE, PAD, BOS, EOS, SPECIAL_TOKENS } from './text';
export { CanvasCodec } from './canvas';
export { saveMultimodalModel, readMultimodalFolder, modelSampling, DEFAULT_GENERATE_SAMPLING, DEFAULT_MULTIMODAL_MODEL_DIR } from './model-folder';
export { readImageTextFolder, writeImageTextFolder, CAPTIONS_FILE } from './folder';
export type { ImageTextItem } from './folder';
export { readSlots, checkFaithfulness, captionClaims, scoreScenes } from './read';
export type { SlotReading, CaptionClaims, FaithfulnessCheck, DigitClassifier, SceneScore } from './read';
