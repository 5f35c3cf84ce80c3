/**
 * "FID-MNIST": the shipped MNIST classifier as a FeatureExtractor. Features are its 128-d penultimate
 * layer (fc1 after ReLU); logits come along so the Inception Score can use the same network.
 *
 * Preprocessing of each RgbImage:
 *   1. to gray: the mean of R, G and B (in float, not rounded); a 1-channel buffer (data.length = h*w)
 *      is taken as gray directly;
 *   2. to 28x28 if needed: bilinear with half-pixel centres (as PIL without antialiasing or
 *      `F.interpolate(mode='bilinear', align_corners=False)`), edges clamped;
 *   3. scaled to [0, 1] by dividing by 255. Digits must be light on a dark background, as in MNIST.
 */
import type { FeatureBatch, FeatureExtractor, RgbImage } from '../fid/extractor';
import { DEFAULT_MNIST_CLASSIFIER_DIR, loadMnistClassifier, type MnistClassifier } from './classifier';
import { FEATURE_DIM, IMAGE_SIZE, NUM_CLASSES } from './model';

export const MNIST_EXTRACTOR_NAME = 'mnist-classifier-fc1';

export interface MnistFeatureExtractorOptions {
  /** Weights folder (default: the shipped classifier). Ignored when `classifier` is given. */
  dir?: string;
  /** An already loaded classifier to share (it is not disposed by the extractor). */
  classifier?: MnistClassifier;
  /** Images per `extract` call that callers should aim for; default 500. */
  batchSize?: number;
}

/** Gray levels (0..255, float) of one image, from 3-channel RGB or 1-channel data. */
function toGray(image: RgbImage, index: number): Float32Array {
  const { width, height, data } = image;
  if (!Number.isInteger(width) || !Number.isInteger(height) || width <= 0 || height <= 0) {
    throw new Error(`Image ${index}: width and height must be positive integers (got ${width}x${height}).`);
  }
  const pixels = width * height;
  const gray = new Float32Array(pixels);
  if (data.length === pixels * 3) {
    for (let p = 0; p < pixels; p++) gray[p] = (data[3 * p] + data[3 * p + 1] + data[3 * p + 2]) / 3;
  } else if (data.length === pixels) {
    gray.set(data);
  } else {
    throw new Error(`Image ${index}: ${width}x${height} needs ${pixels * 3} bytes (RGB) or ${pixels} (gray), got ${data.length}.`);
  }
  return gray;
}

/** Bilinear resize of one channel with half-pixel centres and clamped edges. */
export function resizeBilinear(src: Float32Array, srcH: number, srcW: number, dstH: number, dstW: number): Float32Array {
  const out = new Float32Array(dstH * dstW);
  const sy = srcH / dstH;
  const sx = srcW / dstW;
  for (let y = 0; y < dstH; y++) {
    const fy = Math.min(Math.max((y + 0.5) * sy - 0.5, 0), srcH - 1);
    const y0 = Math.floor(fy);
    const y1 = Math.min(y0 + 1, srcH - 1);
    const wy = fy - y0;
    for (let x = 0; x < dstW; x++) {
      const fx = Math.min(Math.max((x + 0.5) * sx - 0.5, 0), srcW - 1);
      const x0 = Math.floor(fx);
      const x1 = Math.min(x0 + 1, srcW - 1);
      const wx = fx - x0;
      const top = src[y0 * srcW + x0] * (1 - wx) + src[y0 * srcW + x1] * wx;
      const bottom = src[y1 * srcW + x0] * (1 - wx) + src[y1 * srcW + x1] * wx;
      out[y * dstW + x] = top * (1 - wy) + bottom * wy;
    }
  }
  return out;
}

/** The classifier's [0, 1] input for a batch of images of any size and channel count. */
export function mnistInputs(images: readonly RgbImage[]): Float32Array {
  const pixels = IMAGE_SIZE * IMAGE_SIZE;
  const inputs = new Float32Array(images.length * pixels);
  images.forEach((image, i) => {
    let gray = toGray(image, i);
    if (image.height !== IMAGE_SIZE || image.width !== IMAGE_SIZE) {
      gray = resizeBilinear(gray, image.height, image.width, IMAGE_SIZE, IMAGE_SIZE);
    }
    for (let p = 0; p < pixels; p++) inputs[i * pixels + p] = gray[p] / 255;
  });
  return inputs;
}

/**
 * The FID-MNIST feature extractor: 128-d features plus 10 logits per image.
 * Throws the classifier's loading error (naming the file and the fix) when the weights are missing.
 */
export async function createMnistFeatureExtractor(options: MnistFeatureExtractorOptions = {}): Promise<FeatureExtractor> {
  const owned = options.classifier === undefined;
  const classifier = options.classifier ?? (await loadMnistClassifier(options.dir ?? DEFAULT_MNIST_CLASSIFIER_DIR));
  return {
    name: MNIST_EXTRACTOR_NAME,
    dim: FEATURE_DIM,
    batchSize: options.batchSize ?? 500,
    async extract(images: readonly RgbImage[]): Promise<FeatureBatch> {
      if (images.length === 0) return { features: new Float32Array(0), logits: new Float32Array(0), numClasses: NUM_CLASSES };
      const { features, logits } = await classifier.featuresFromScaled(mnistInputs(images));
      return { features, logits, numClasses: NUM_CLASSES };
    },
    async dispose() {
      if (owned) classifier.dispose();
    },
  };
}
