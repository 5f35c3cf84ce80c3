/**
 * PNG in and out for the CLI, through sharp: input images brought to the model's size and channels,
 * edit masks reduced to the token grid, and grids of generated images. Pixels are uint8 NHWC.
 */
import * as fs from 'fs';
import * as path from 'path';
import sharp from 'sharp';
import { UsageError } from './errors';

/** Decode an image file to raw pixels, or a one-line UsageError naming the flag and the file. */
async function decode(file: string, flag: string, pipeline: (img: sharp.Sharp) => sharp.Sharp) {
  if (!fs.existsSync(file)) throw new UsageError(`${flag}: ${file} does not exist`);
  if (fs.statSync(file).isDirectory()) throw new UsageError(`${flag}: ${file} is a folder, not an image`);
  try {
    return await pipeline(sharp(file)).raw().toBuffer({ resolveWithObject: true });
  } catch (e) {
    throw new UsageError(`${flag}: cannot read ${file} as an image (${(e as Error).message.split('\n')[0]})`);
  }
}

/**
 * An image as the model sees it: `size` x `size`, `channels` 1 (gray) or 3 (RGB), uint8 HWC.
 * Transparency is flattened onto black (MNIST's background). An image of another size is center-cropped
 * to a square and resized (as the training data was prepared); one already at `size` is read unchanged.
 */
export async function readImage(file: string, size: number, channels: number, flag = '--input'): Promise<Uint8Array> {
  const { data, info } = await decode(file, flag, (img) => {
    let p = img.flatten({ background: '#000000' });
    p = channels === 1 ? p.toColourspace('b-w') : p.toColourspace('srgb');
    return p.resize(size, size, { fit: 'cover', position: 'centre' });
  });
  if (info.width !== size || info.height !== size || info.channels !== channels) {
    throw new UsageError(`${flag}: ${file} decoded to ${info.width}x${info.height}x${info.channels}, expected ${size}x${size}x${channels}`);
  }
  return new Uint8Array(data.buffer, data.byteOffset, data.length);
}

/**
 * An edit mask image -> the token grid (1 = regenerate, 0 = keep). The mask must have the model's image
 * size; white (gray >= 128) = regenerate, black = keep. A token is regenerated when ANY of its pixels is
 * white, so everything painted white is regenerated, together with the rest of the tokens it touches.
 */
export async function readMask(file: string, size: number, patchSize: number, flag = '--mask'): Promise<Uint8Array> {
  const { data, info } = await decode(file, flag, (img) => img.flatten({ background: '#000000' }).toColourspace('b-w'));
  if (info.width !== size || info.height !== size) {
    throw new UsageError(`${flag}: ${file} is ${info.width}x${info.height}; a mask must match the model's ${size}x${size} images`);
  }
  const grid = size / patchSize;
  const region = new Uint8Array(grid * grid);
  for (let y = 0; y < size; y++)
    for (let x = 0; x < size; x++) {
      if (data[(y * size + x) * info.channels] >= 128) region[Math.floor(y / patchSize) * grid + Math.floor(x / patchSize)] = 1;
    }
  if (!region.includes(1)) throw new UsageError(`${flag}: ${file} is all black; paint the region to regenerate white`);
  return region;
}

/**
 * Write `count` images (uint8 NHWC, `size` x `size` x `channels` each) as one PNG grid, row-major with
 * `cols` per row and no gaps, so the grid is cols*size wide and ceil(count/cols)*size high; `zoom` > 1
 * enlarges it by pixel repetition (nearest neighbour: no invented detail).
 */
/** Default enlargement of written images: small models' images (under 28 pixels) are doubled, or more. */
export function defaultZoom(size: number): number {
  return size >= 28 ? 1 : Math.ceil(28 / size);
}

export async function writeGrid(file: string, images: Uint8Array, count: number, cols: number, size: number, channels: number, zoom = 1): Promise<void> {
  const rows = Math.ceil(count / cols);
  const width = cols * size;
  const canvas = new Uint8Array(rows * size * width * channels);
  const rowBytes = size * channels;
  for (let n = 0; n < count; n++) {
    const top = Math.floor(n / cols) * size;
    const left = (n % cols) * size;
    for (let y = 0; y < size; y++) {
      const src = (n * size + y) * rowBytes;
      canvas.set(images.subarray(src, src + rowBytes), ((top + y) * width + left) * channels);
    }
  }
  fs.mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
  try {
    let img = sharp(canvas, { raw: { width, height: rows * size, channels: channels as 1 | 3 } });
    // sharp would otherwise write gray pixels as an RGB PNG
    if (channels === 1) img = img.toColourspace('b-w');
    if (zoom > 1) img = sharp(await img.png().toBuffer()).resize(width * zoom, rows * size * zoom, { kernel: 'nearest' });
    if (channels === 1) img = img.toColourspace('b-w');
    await img.png().toFile(file);
  } catch (e) {
    throw new UsageError(`cannot write ${file}: ${(e as Error).message.split('\n')[0]}`);
  }
}
