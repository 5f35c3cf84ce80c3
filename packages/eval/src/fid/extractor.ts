/**
 * The contract between FID and a feature network. The InceptionV3 ONNX extractor (`inception.ts`) and the
 * MNIST classifier's extractor (`../mnist`) both implement it, so `computeFid` / the CLI treat them alike.
 */

/** One decoded image: 8-bit RGB, row-major, interleaved (`data.length === height * width * 3`). */
export interface RgbImage {
  readonly width: number;
  readonly height: number;
  /** h*w*3 bytes, channel last (R,G,B per pixel). Grayscale sources are replicated into the three channels. */
  readonly data: Uint8Array;
}

/** What an extractor returns for one batch of N images. */
export interface FeatureBatch {
  /** N*dim values, row i = image i (row-major). float32 or float64; statistics are accumulated in float64. */
  readonly features: Float32Array | Float64Array;
  /** N*numClasses class logits (pre-softmax) when the network has a classifier head; used for Inception Score. */
  readonly logits?: Float32Array | Float64Array;
  /** Number of classes in `logits` (required when `logits` is present). */
  readonly numClasses?: number;
}

export interface FeatureExtractor {
  /** Short id written into saved statistics and progress lines, e.g. "inception-v3-pool3" or "mnist-penultimate". */
  readonly name: string;
  /** Feature dimension (2048 for Inception pool3). */
  readonly dim: number;
  /**
   * Preferred number of images per `extract` call (memory/speed trade-off); callers may pass fewer.
   * Optional: callers default to 50 (pytorch-fid's default batch size).
   */
  readonly batchSize?: number;
  /**
   * Features (and logits when available) for a batch of images of any size: the extractor does its own
   * resizing / normalisation (pytorch-fid's for Inception). Must not keep references to the input images.
   */
  extract(images: readonly RgbImage[]): Promise<FeatureBatch>;
  /** Releases native resources (ONNX sessions); optional. */
  dispose?(): Promise<void>;
}
