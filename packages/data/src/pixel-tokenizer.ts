/**
 * The pixel tokenizer: images as CausalFusion tokens without a VAE. An image is cut into p x p
 * patches; each patch is one token of p*p*channels values scaled from 0..255 to [-1, 1]. The token layout
 * is the transformer's `patchify` (official nchpwq -> nhwpqc): token index = patch row * grid + patch
 * column (raster order), value index = (row in patch * p + column in patch) * channels + channel.
 */

export interface PixelTokenizerOptions {
  /** Side of the (square) image in pixels. */
  imageSize: number;
  /** 1 (gray) or 3 (RGB). */
  channels: number;
  /** Patch side p; must divide imageSize. */
  patchSize: number;
}

export class PixelTokenizer {
  readonly imageSize: number;
  readonly channels: number;
  readonly patchSize: number;
  /** Patches per side. */
  readonly grid: number;
  /** L: tokens per image. */
  readonly numTokens: number;
  /** d: values per token (p*p*channels). */
  readonly tokenDim: number;
  /** Values per image (H*W*channels). */
  readonly pixelsPerImage: number;

  constructor(options: PixelTokenizerOptions) {
    const { imageSize, channels, patchSize } = options;
    for (const [name, v] of Object.entries({ imageSize, channels, patchSize })) {
      if (!Number.isInteger(v) || v < 1) throw new Error(`pixelTokenizer: ${name} must be a positive integer, got ${String(v)}`);
    }
    if (imageSize % patchSize !== 0) {
      throw new Error(`pixelTokenizer: patchSize ${patchSize} does not divide imageSize ${imageSize}; pick a divisor (e.g. 7 or 4 for 28)`);
    }
    this.imageSize = imageSize;
    this.channels = channels;
    this.patchSize = patchSize;
    this.grid = imageSize / patchSize;
    this.numTokens = this.grid * this.grid;
    this.tokenDim = patchSize * patchSize * channels;
    this.pixelsPerImage = imageSize * imageSize * channels;
  }

  /** Where pixel value i of an image (NHWC, i = (y*W + x)*channels + c) goes inside its token block. */
  private tokenOffset(y: number, x: number, c: number): number {
    const p = this.patchSize;
    const token = Math.floor(y / p) * this.grid + Math.floor(x / p);
    return token * this.tokenDim + ((y % p) * p + (x % p)) * this.channels + c;
  }

  private countImages(length: number, per: number, what: string): number {
    if (length % per !== 0) {
      throw new Error(`pixelTokenizer: ${what} has ${length} values, not a multiple of ${per} (${this.describe()})`);
    }
    return length / per;
  }

  private describe(): string {
    const { imageSize: s, channels: c, patchSize: p } = this;
    return `images ${s}x${s}x${c}, patch ${p}: ${this.numTokens} tokens of ${this.tokenDim} values`;
  }

  /** uint8 images N*H*W*channels (NHWC, 0..255) -> tokens [N, L, p*p*channels] in [-1, 1]. */
  encode(images: ArrayLike<number>): Float32Array {
    const N = this.countImages(images.length, this.pixelsPerImage, 'the image buffer');
    const { imageSize: size, channels: ch } = this;
    const out = new Float32Array(images.length);
    for (let n = 0; n < N; n++) {
      const base = n * this.pixelsPerImage;
      for (let y = 0; y < size; y++)
        for (let x = 0; x < size; x++)
          for (let c = 0; c < ch; c++) {
            out[base + this.tokenOffset(y, x, c)] = (images[base + (y * size + x) * ch + c] / 255) * 2 - 1;
          }
    }
    return out;
  }

  /** tokens [N, L, p*p*channels] -> uint8 images N*H*W*channels: (v+1)/2*255, clamped and rounded. */
  decode(tokens: ArrayLike<number>): Uint8Array {
    const N = this.countImages(tokens.length, this.pixelsPerImage, 'the token buffer');
    const { imageSize: size, channels: ch } = this;
    const out = new Uint8Array(tokens.length);
    for (let n = 0; n < N; n++) {
      const base = n * this.pixelsPerImage;
      for (let y = 0; y < size; y++)
        for (let x = 0; x < size; x++)
          for (let c = 0; c < ch; c++) {
            const v = ((tokens[base + this.tokenOffset(y, x, c)] + 1) / 2) * 255;
            // Uint8Array assignment would wrap out-of-range values; clamp first (NaN -> 0)
            out[base + (y * size + x) * ch + c] = v > 255 ? 255 : v > 0 ? Math.round(v) : 0;
          }
    }
    return out;
  }

  /**
   * NHWC uint8 images -> NCHW floats in [-1, 1] (the transformer's latent layout, for `trainStep`,
   * whose input is patchified inside the model).
   */
  toNchw(images: ArrayLike<number>): Float32Array {
    const N = this.countImages(images.length, this.pixelsPerImage, 'the image buffer');
    const { imageSize: size, channels: ch } = this;
    const out = new Float32Array(images.length);
    for (let n = 0; n < N; n++) {
      const base = n * this.pixelsPerImage;
      for (let c = 0; c < ch; c++) for (let i = 0; i < size * size; i++) out[base + c * size * size + i] = (images[base + i * ch + c] / 255) * 2 - 1;
    }
    return out;
  }
}

/** `new PixelTokenizer({ imageSize, channels, patchSize })`. */
export function pixelTokenizer(options: PixelTokenizerOptions): PixelTokenizer {
  return new PixelTokenizer(options);
}
