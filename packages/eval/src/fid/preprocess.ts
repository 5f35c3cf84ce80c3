/**
 * pytorch-fid's input pipeline for InceptionV3: uint8 RGB -> /255 -> F.interpolate(size=(299, 299),
 * mode='bilinear', align_corners=False) -> 2x - 1, as float32 CHW. PyTorch's bilinear resize has no
 * antialiasing when downscaling, so generic image resizers (sharp, canvas) give different pixels; this one
 * follows torch's CPU kernel: source coordinate (dst + 0.5) * scale - 0.5 clamped at 0, where the scale
 * in/out is a float32 (its rounding moves the taps by up to ~3e-6; the rest is computed in float64,
 * which stays within 2.4e-7 of torch on the reference images).
 */
import type { RgbImage } from './extractor';

interface Taps {
  i0: Int32Array;
  i1: Int32Array;
  w0: Float64Array;
  w1: Float64Array;
}

/** Source indices and weights along one axis (torch's area_pixel_compute_source_index, align_corners=False). */
function bilinearTaps(inSize: number, outSize: number): Taps {
  const scale = Math.fround(inSize / outSize);
  const taps: Taps = { i0: new Int32Array(outSize), i1: new Int32Array(outSize), w0: new Float64Array(outSize), w1: new Float64Array(outSize) };
  for (let o = 0; o < outSize; o++) {
    const src = Math.max(0, scale * (o + 0.5) - 0.5);
    const i0 = Math.floor(src);
    const lambda = src - i0;
    taps.i0[o] = i0;
    taps.i1[o] = i0 < inSize - 1 ? i0 + 1 : i0;
    taps.w1[o] = lambda;
    taps.w0[o] = 1 - lambda;
  }
  return taps;
}

export function checkImage(image: RgbImage, label = 'image'): void {
  const { width, height, data } = image;
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1) {
    throw new Error(`${label}: invalid size ${width}x${height}`);
  }
  if (data.length !== width * height * 3) {
    throw new Error(`${label}: ${data.length} bytes for ${width}x${height} RGB (expected ${width * height * 3}); images must be 8-bit RGB`);
  }
}

/**
 * One image -> float32 [3, size, size] in [-1, 1], written into `out` at `offset` (for batching).
 * Returns `out`.
 */
export function preprocessInception(image: RgbImage, size = 299, out = new Float32Array(3 * size * size), offset = 0): Float32Array {
  checkImage(image);
  const { width, height, data } = image;
  const ty = bilinearTaps(height, size);
  const tx = bilinearTaps(width, size);
  const plane = size * size;
  for (let c = 0; c < 3; c++) {
    // ToTensor: value / 255 (float32 in torch; rounding it changes nothing beyond 1e-7).
    const src = new Float64Array(width * height);
    for (let p = 0; p < width * height; p++) src[p] = Math.fround(data[p * 3 + c] / 255);
    const base = offset + c * plane;
    for (let y = 0; y < size; y++) {
      const r0 = ty.i0[y] * width;
      const r1 = ty.i1[y] * width;
      const h0 = ty.w0[y];
      const h1 = ty.w1[y];
      for (let x = 0; x < size; x++) {
        const c0 = tx.i0[x];
        const c1 = tx.i1[x];
        const v0 = tx.w0[x];
        const v1 = tx.w1[x];
        const value = h0 * (v0 * src[r0 + c0] + v1 * src[r0 + c1]) + h1 * (v0 * src[r1 + c0] + v1 * src[r1 + c1]);
        out[base + y * size + x] = 2 * value - 1;
      }
    }
  }
  return out;
}
