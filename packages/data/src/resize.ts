/**
 * Resizing a stack of square uint8 images (HWC, image after image). Shrinking averages the source pixels
 * each target pixel covers (area / box filter: no aliasing, so thin MNIST strokes survive); enlarging is
 * bilinear with half-pixel centers (as PIL and torchvision), so an image shrunk and enlarged back stays close.
 */

/** 1-D weights: for each target index, the source indices and weights that make it. */
function axisWeights(from: number, to: number): { index: number[]; weight: number[] }[] {
  const out: { index: number[]; weight: number[] }[] = [];
  const scale = from / to;
  for (let i = 0; i < to; i++) {
    const index: number[] = [];
    const weight: number[] = [];
    if (to <= from) {
      // area: target pixel i covers source [i*scale, (i+1)*scale)
      const lo = i * scale;
      const hi = lo + scale;
      for (let s = Math.floor(lo); s < Math.ceil(hi); s++) {
        const overlap = Math.min(hi, s + 1) - Math.max(lo, s);
        if (overlap > 1e-12) {
          index.push(s);
          weight.push(overlap / scale);
        }
      }
    } else {
      // bilinear between the two nearest source centers, clamped at the border
      const x = Math.min(Math.max((i + 0.5) * scale - 0.5, 0), from - 1);
      const s0 = Math.floor(x);
      const s1 = Math.min(s0 + 1, from - 1);
      const f = x - s0;
      index.push(s0, s1);
      weight.push(1 - f, f);
    }
    out.push({ index, weight });
  }
  return out;
}

/**
 * Resize `count` square images of `from` x `from` x `channels` (uint8, HWC) to `to` x `to`. Returns a new
 * array; the same size returns a copy.
 */
export function resizeImages(images: Uint8Array, from: number, to: number, channels = 1): Uint8Array {
  for (const [name, v] of Object.entries({ from, to, channels })) {
    if (!Number.isInteger(v) || v < 1) throw new RangeError(`resizeImages: ${name} must be a positive integer, got ${v}`);
  }
  const per = from * from * channels;
  if (images.length % per !== 0) {
    throw new RangeError(`resizeImages: ${images.length} values is not a whole number of ${from}x${from}x${channels} images`);
  }
  if (from === to) return Uint8Array.from(images);
  const count = images.length / per;
  const w = axisWeights(from, to);
  const out = new Uint8Array(count * to * to * channels);
  const rows = new Float64Array(to * from * channels); // separable: rows first, then columns
  for (let n = 0; n < count; n++) {
    const src = n * per;
    rows.fill(0);
    for (let y = 0; y < to; y++) {
      const { index, weight } = w[y];
      for (let k = 0; k < index.length; k++) {
        const srcRow = src + index[k] * from * channels;
        for (let j = 0; j < from * channels; j++) rows[y * from * channels + j] += weight[k] * images[srcRow + j];
      }
    }
    const dst = n * to * to * channels;
    for (let y = 0; y < to; y++) {
      for (let x = 0; x < to; x++) {
        const { index, weight } = w[x];
        for (let c = 0; c < channels; c++) {
          let v = 0;
          for (let k = 0; k < index.length; k++) v += weight[k] * rows[(y * from + index[k]) * channels + c];
          out[dst + (y * to + x) * channels + c] = Math.min(255, Math.max(0, Math.round(v)));
        }
      }
    }
  }
  return out;
}
