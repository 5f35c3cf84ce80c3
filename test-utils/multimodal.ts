/**
 * The tiny multimodal model of the packages' tests: an 8x12 canvas in 2x2 patches (24 tokens of 4 values),
 * 8 text ids of a 24-token vocabulary, width 32, 2 blocks.
 */
// (a plain object: the tests give it @causalfusion/config's MultimodalConfig type)
export const TINY_MULTIMODAL_CONFIG = {
  imageHeight: 8,
  imageWidth: 12,
  channels: 1,
  patchSize: 2,
  textLength: 8,
  vocabSize: 24,
  hiddenSize: 32,
  depth: 2,
  numHeads: 2,
  mlpRatio: 2,
  captionDropoutProb: 0.1,
};

/** A tiny model on the real captioned-MNIST geometry (the 16x32 canvas in 4x4 patches, 18 text ids), width 32. */
export const tinyCanvasConfig = (vocabSize: number, depth: number) => ({
  ...TINY_MULTIMODAL_CONFIG,
  imageHeight: 16,
  imageWidth: 32,
  patchSize: 4,
  textLength: 18,
  vocabSize,
  depth,
});
