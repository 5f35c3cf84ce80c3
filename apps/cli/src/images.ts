/**
 * Images in and out for the CLI, through sharp: input images at their own resolution and brought to the
 * model's size (block averaging / area), edit masks laid over the token grid, edits put back into the
 * original pixels, and grids of generated images (PNG, JPEG or WebP, as the file name says). Pixels are
 * uint8 NHWC.
 */
import * as fs from 'fs';
import * as path from 'path';
import sharp from 'sharp';
import { writeFileAtomic } from '@causalfusion/safetensors';
import { UsageError } from './errors';
import { LIMITS } from './limits';
import { encodeFormat, imageFormatOf, type ImageFormat } from './outputs';

/** An image that arrives as bytes rather than as a file (the studio's uploads); `name` stands for it in messages. */
export interface ImageBytes {
  name: string;
  bytes: Buffer;
}

/** Where an input image comes from: a file path, or bytes. */
export type ImageSource = string | ImageBytes;

/** The name an image source goes by in messages. */
export function sourceName(source: ImageSource): string {
  return typeof source === 'string' ? source : source.name;
}

/** Decode an image (a file, or bytes) to raw pixels, or a one-line UsageError naming the flag and the file. */
async function decode(source: ImageSource, flag: string, pipeline: (img: sharp.Sharp) => sharp.Sharp) {
  const file = sourceName(source);
  if (typeof source === 'string') {
    if (!fs.existsSync(file)) throw new UsageError(`${flag}: ${file} does not exist`);
    if (fs.statSync(file).isDirectory()) throw new UsageError(`${flag}: ${file} is a folder, not an image`);
  }
  try {
    const input = typeof source === 'string' ? source : source.bytes;
    return await pipeline(sharp(input, { limitInputPixels: LIMITS.imagePixels }))
      .raw()
      .toBuffer({ resolveWithObject: true });
  } catch (e) {
    if (/pixel limit/i.test((e as Error).message)) {
      throw new UsageError(`${flag}: ${file} has more than ${LIMITS.imagePixels} pixels (64 megapixels, the limit); use a smaller image`);
    }
    throw new UsageError(`${flag}: cannot read ${file} as an image (${(e as Error).message.split('\n')[0]})`);
  }
}

/** Raw pixels: uint8 HWC, `channels` 1 (gray) or 3 (RGB). */
export interface RawImage {
  data: Uint8Array;
  width: number;
  height: number;
  channels: number;
}

/**
 * An image at its own resolution, in `channels` (1: gray, 3: RGB); transparency is flattened onto black
 * (MNIST's background). Images over {@link LIMITS.imagePixels} pixels are refused before they are decoded.
 */
export async function readRaw(source: ImageSource, channels: number, flag = '--input'): Promise<RawImage> {
  const file = sourceName(source);
  const { data, info } = await decode(source, flag, (img) => {
    const p = img.flatten({ background: '#000000' });
    return channels === 1 ? p.toColourspace('b-w') : p.toColourspace('srgb');
  });
  if (info.channels !== channels) throw new UsageError(`${flag}: ${file} decoded to ${info.channels} channels, expected ${channels}`);
  return { data: new Uint8Array(data.buffer, data.byteOffset, data.length), width: info.width, height: info.height, channels };
}

/**
 * Area resampling to `dw` x `dh`: each output pixel is the mean of the input pixels under it, weighted by
 * how much of each it covers (exact integer arithmetic, rounded once). An integer reduction is plain block
 * averaging (so an image enlarged by pixel repetition comes back exactly), an integer enlargement is pixel
 * repetition.
 */
export function resizeArea(src: RawImage, dw: number, dh: number): Uint8Array {
  const { width: sw, height: sh, channels: c, data } = src;
  if (sw === dw && sh === dh) return data.slice();
  // Along an axis, input pixel i spans [i*d, (i+1)*d) and output pixel j spans [j*s, (j+1)*s) (s, d the sizes).
  const taps = (s: number, d: number) =>
    Array.from({ length: d }, (_, j) => {
      const lo = j * s,
        hi = (j + 1) * s;
      const out: [number, number][] = [];
      for (let i = Math.floor(lo / d); i * d < hi; i++) out.push([i, Math.min(hi, (i + 1) * d) - Math.max(lo, i * d)]);
      return out;
    });
  const xs = taps(sw, dw),
    ys = taps(sh, dh);
  // horizontal pass: weights sum to sw per output pixel; vertical pass: to sh
  const rows = new Float64Array(sh * dw * c);
  for (let y = 0; y < sh; y++)
    for (let x = 0; x < dw; x++)
      for (let k = 0; k < c; k++) {
        let acc = 0;
        for (const [i, w] of xs[x]) acc += w * data[(y * sw + i) * c + k];
        rows[(y * dw + x) * c + k] = acc;
      }
  const out = new Uint8Array(dh * dw * c);
  const norm = sw * sh;
  for (let y = 0; y < dh; y++)
    for (let x = 0; x < dw; x++)
      for (let k = 0; k < c; k++) {
        let acc = 0;
        for (const [i, w] of ys[y]) acc += w * rows[(i * dw + x) * c + k];
        out[(y * dw + x) * c + k] = Math.round(acc / norm);
      }
  return out;
}

/** The centered square of an image (the part the model sees). */
export interface SquareCrop {
  left: number;
  top: number;
  side: number;
}

export function centerSquare(width: number, height: number): SquareCrop {
  const side = Math.min(width, height);
  return { left: Math.floor((width - side) / 2), top: Math.floor((height - side) / 2), side };
}

function cropSquare(img: RawImage, crop: SquareCrop): RawImage {
  if (crop.side === img.width && crop.side === img.height) return img;
  const { channels: c } = img;
  const data = new Uint8Array(crop.side * crop.side * c);
  for (let y = 0; y < crop.side; y++) {
    const from = ((crop.top + y) * img.width + crop.left) * c;
    data.set(img.data.subarray(from, from + crop.side * c), y * crop.side * c);
  }
  return { data, width: crop.side, height: crop.side, channels: c };
}

/** How an image of `width` x `height` is brought to `size` x `size`, in words; null when it has that size. */
export function describeFit(width: number, height: number, size: number): string | null {
  const { side } = centerSquare(width, height);
  const steps: string[] = [];
  if (width !== height) steps.push(`center-cropped to ${side}x${side}`);
  if (side !== size) {
    if (side % size === 0) steps.push(`reduced ${side / size}x by block averaging to ${size}x${size}`);
    else if (size % side === 0) steps.push(`enlarged ${size / side}x by pixel repetition to ${size}x${size}`);
    else steps.push(`resized by area to ${size}x${size}`);
  }
  return steps.length ? steps.join(', ') : null;
}

/**
 * An image brought to the model's `size` x `size`: the centered square, reduced by block averaging (an
 * integer zoom) or resized by area (other sizes); an image already at `size` is unchanged.
 */
export function fitToModel(img: RawImage, size: number): Uint8Array {
  return resizeArea(cropSquare(img, centerSquare(img.width, img.height)), size, size);
}

/**
 * An edit mask image of any size -> the token grid (1 = regenerate, 0 = keep). White (gray >= 128) =
 * regenerate, black = keep. The mask's centered square is laid over the model's `size` x `size` pixels, as
 * the input is; a token is regenerated when ANY mask pixel over it is white, so everything painted white is
 * regenerated (at any mask size), together with the rest of the tokens it touches. `onResize` hears how a
 * mask of another size was mapped.
 */
export async function readMask(
  source: ImageSource,
  size: number,
  pixelsPerToken: number,
  flag = '--mask',
  onResize?: (message: string) => void,
): Promise<Uint8Array> {
  const file = sourceName(source);
  const mask = await readRaw(source, 1, flag);
  const crop = centerSquare(mask.width, mask.height);
  const m = crop.side;
  const grid = size / pixelsPerToken;
  const region = new Uint8Array(grid * grid);
  // mask pixel X spans model pixels [X*size/m, (X+1)*size/m): tokens floor(X*size/(m*ppt)) .. ceil((X+1)*size/(m*ppt))-1
  const span = (X: number): [number, number] => [Math.floor((X * size) / (m * pixelsPerToken)), Math.ceil(((X + 1) * size) / (m * pixelsPerToken)) - 1];
  for (let Y = 0; Y < m; Y++)
    for (let X = 0; X < m; X++) {
      if (mask.data[(crop.top + Y) * mask.width + crop.left + X] < 128) continue;
      const [r0, r1] = span(Y),
        [c0, c1] = span(X);
      for (let r = r0; r <= r1; r++) for (let c = c0; c <= c1; c++) region[r * grid + c] = 1;
    }
  if (!region.includes(1)) throw new UsageError(`${flag}: ${file} is all black; paint the region to regenerate white`);
  if (mask.width !== size || mask.height !== size) {
    const cropped = mask.width !== mask.height ? `center-cropped to ${m}x${m} and ` : '';
    onResize?.(
      `${flag}: ${file} is ${mask.width}x${mask.height}, ${cropped}laid over the model's ${size}x${size} pixels ` +
        `(${grid}x${grid} tokens); a token is regenerated when any white mask pixel touches it`,
    );
  }
  return region;
}

/**
 * Put the regenerated region back into the ORIGINAL image at its own resolution. `generated` is the model's
 * `size` x `size` output (same channels as `original`); `region` the token grid (1 = regenerated). Inside the
 * centered square, each pixel whose center lies in a regenerated token takes the model's output brought to
 * the square's resolution (pixel repetition for an integer zoom, area otherwise); every other pixel is the
 * original's, bit for bit.
 */
export function compositeEdit(original: RawImage, generated: Uint8Array, size: number, region: Uint8Array, pixelsPerToken: number): Uint8Array {
  const { width, height, channels: c } = original;
  const crop = centerSquare(width, height);
  const m = crop.side;
  const up = resizeArea({ data: generated, width: size, height: size, channels: c }, m, m);
  const grid = size / pixelsPerToken;
  // crop pixel X's center, (X + 0.5) * size / m in model pixels, lies in token floor((2X + 1) * size / (2 m ppt))
  const tokenOf = (X: number) => Math.floor(((2 * X + 1) * size) / (2 * m * pixelsPerToken));
  const out = original.data.slice();
  for (let Y = 0; Y < m; Y++) {
    const row = tokenOf(Y) * grid;
    for (let X = 0; X < m; X++) {
      if (!region[row + tokenOf(X)]) continue;
      const to = ((crop.top + Y) * width + crop.left + X) * c;
      for (let k = 0; k < c; k++) out[to + k] = up[(Y * m + X) * c + k];
    }
  }
  return out;
}

/** Default enlargement of written images: small models' images (under 28 pixels) are doubled, or more. */
export function defaultZoom(size: number): number {
  return size >= 28 ? 1 : Math.ceil(28 / size);
}

/**
 * Write `count` images (uint8 NHWC, `size` x `size` x `channels` each) as one image grid, row-major with
 * `cols` per row and no gaps, so the grid is cols*size wide and ceil(count/cols)*size high; `zoom` > 1
 * enlarges it by pixel repetition (nearest neighbour: no invented detail).
 */
export async function writeGrid(file: string, images: Uint8Array, count: number, cols: number, size: number, channels: number, zoom = 1): Promise<void> {
  await writeImageGrid(file, images, count, cols, size, size, channels, zoom);
}

/** The size of the file {@link writeImageGrid} writes. */
export function gridSize(count: number, cols: number, cellWidth: number, cellHeight: number, zoom = 1): { width: number; height: number } {
  return { width: cols * cellWidth * zoom, height: Math.ceil(count / cols) * cellHeight * zoom };
}

/**
 * {@link writeGrid} for cells of `cellWidth` x `cellHeight`. The file's extension picks the format: .png,
 * .jpg/.jpeg (quality 95) or .webp (lossless).
 */
export async function writeImageGrid(
  file: string,
  images: Uint8Array,
  count: number,
  cols: number,
  cellWidth: number,
  cellHeight: number,
  channels: number,
  zoom = 1,
): Promise<void> {
  let encoded: Buffer;
  try {
    encoded = await encodeImageGrid(images, count, cols, cellWidth, cellHeight, channels, zoom, imageFormatOf(file));
  } catch (e) {
    throw new UsageError(`cannot write ${file}: ${(e as Error).message.split('\n')[0]}`);
  }
  // encoded in memory, then a temporary file renamed into place (folders made as needed): never half an image
  writeFileAtomic(file, encoded);
}

/** The grid {@link writeImageGrid} writes, as the bytes of an image file (PNG unless `format` says otherwise). */
export async function encodeImageGrid(
  images: Uint8Array,
  count: number,
  cols: number,
  cellWidth: number,
  cellHeight: number,
  channels: number,
  zoom = 1,
  format: ImageFormat = 'png',
): Promise<Buffer> {
  const rows = Math.ceil(count / cols);
  const size = cellHeight;
  const width = cols * cellWidth;
  const canvas = new Uint8Array(rows * size * width * channels);
  const rowBytes = cellWidth * channels;
  for (let n = 0; n < count; n++) {
    const top = Math.floor(n / cols) * size;
    const left = (n % cols) * cellWidth;
    for (let y = 0; y < size; y++) {
      const src = (n * size + y) * rowBytes;
      canvas.set(images.subarray(src, src + rowBytes), ((top + y) * width + left) * channels);
    }
  }
  let img = sharp(canvas, { raw: { width, height: rows * size, channels: channels as 1 | 3 } });
  // sharp would otherwise write gray pixels as an RGB PNG
  if (channels === 1) img = img.toColourspace('b-w');
  if (zoom > 1) img = sharp(await img.png().toBuffer()).resize(width * zoom, rows * size * zoom, { kernel: 'nearest' });
  if (channels === 1) img = img.toColourspace('b-w');
  return encodeFormat(img, format).toBuffer();
}
