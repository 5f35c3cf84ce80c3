/**
 * An image-folder dataset, as torchvision's ImageFolder in the official training code: one
 * sub-folder per class (classes sorted by name), PNG and JPEG files inside, each image center-cropped
 * and resized as the official `center_crop_arr`. Decoding goes through `sharp`.
 */
import * as fs from 'fs';
import * as path from 'path';
import sharp from 'sharp';

export interface ImageFolderOptions {
  /** Side of the square output images. */
  imageSize: number;
  /** 1 = grayscale, 3 = RGB (default 3). Alpha is dropped. */
  channels?: 1 | 3;
  /** Images decoded at once (default 8). */
  concurrency?: number;
}

/** Images of an image folder, NHWC uint8: `images[((i * H + y) * W + x) * C + c]`. */
export interface ImageFolderDataset {
  images: Uint8Array;
  /** count class indices (position of the sub-folder in the sorted list). */
  labels: Int32Array;
  count: number;
  height: number;
  width: number;
  channels: 1 | 3;
  /** The sub-folder names, sorted. */
  classNames: readonly string[];
  /** The path of each image, in the order of `images`. */
  files: readonly string[];
}

const IMAGE_EXTENSIONS = new Set(['.png', '.jpg', '.jpeg']);

/** Class sub-folders and their image files, sorted (the ImageFolder order). */
export function listImageFolder(root: string): { classNames: string[]; files: string[]; labels: number[] } {
  if (!fs.existsSync(root) || !fs.statSync(root).isDirectory()) {
    throw new Error(`image folder ${root} does not exist or is not a directory; give a folder with one sub-folder per class`);
  }
  const classNames = fs
    .readdirSync(root, { withFileTypes: true })
    .filter((e) => e.isDirectory() && !e.name.startsWith('.'))
    .map((e) => e.name)
    .sort();
  if (classNames.length === 0) {
    throw new Error(`image folder ${root} has no class sub-folders; put the images of each class in <folder>/<class name>/`);
  }
  const files: string[] = [];
  const labels: number[] = [];
  classNames.forEach((name, label) => {
    const dir = path.join(root, name);
    const images = fs
      .readdirSync(dir)
      .filter((f) => !f.startsWith('.') && IMAGE_EXTENSIONS.has(path.extname(f).toLowerCase()))
      .sort();
    if (images.length === 0) {
      throw new Error(`class folder ${dir} has no PNG or JPEG images; add some or remove the folder`);
    }
    for (const f of images) {
      files.push(path.join(dir, f));
      labels.push(label);
    }
  });
  return { classNames, files, labels };
}

/** Halve an HWC image with 2x2 box averaging (PIL's BOX resize to w // 2, h // 2). */
function boxHalve(src: Uint8Array, w: number, h: number, C: number): { data: Uint8Array; w: number; h: number } {
  const w2 = Math.floor(w / 2);
  const h2 = Math.floor(h / 2);
  const out = new Uint8Array(w2 * h2 * C);
  for (let y = 0; y < h2; y++)
    for (let x = 0; x < w2; x++)
      for (let c = 0; c < C; c++) {
        const a = src[(2 * y * w + 2 * x) * C + c] + src[(2 * y * w + 2 * x + 1) * C + c];
        const b = src[((2 * y + 1) * w + 2 * x) * C + c] + src[((2 * y + 1) * w + 2 * x + 1) * C + c];
        out[(y * w2 + x) * C + c] = Math.round((a + b) / 4);
      }
  return { data: out, w: w2, h: h2 };
}

/**
 * The official `center_crop_arr(pil_image, image_size)`: halve with a box filter while the short side
 * is at least 2x the target, resize bicubically so the short side equals the target, then crop the
 * center. `src` is HWC uint8 with C channels.
 */
export async function centerCropArr(src: Uint8Array, width: number, height: number, channels: number, imageSize: number): Promise<Uint8Array> {
  let img = { data: src, w: width, h: height };
  while (Math.min(img.w, img.h) >= 2 * imageSize) img = boxHalve(img.data, img.w, img.h, channels);
  const scale = imageSize / Math.min(img.w, img.h);
  const w = Math.round(img.w * scale);
  const h = Math.round(img.h * scale);
  let resized = img.data;
  if (w !== img.w || h !== img.h) {
    // sharp's 'cubic' kernel is Catmull-Rom (a = -0.5), the same cubic as PIL's BICUBIC
    resized = new Uint8Array(
      await sharp(img.data, { raw: { width: img.w, height: img.h, channels: channels as 1 | 3 } })
        .resize(w, h, { fit: 'fill', kernel: 'cubic' })
        .raw()
        .toBuffer(),
    );
  }
  const cropY = Math.floor((h - imageSize) / 2);
  const cropX = Math.floor((w - imageSize) / 2);
  const out = new Uint8Array(imageSize * imageSize * channels);
  for (let y = 0; y < imageSize; y++) {
    const from = ((cropY + y) * w + cropX) * channels;
    out.set(resized.subarray(from, from + imageSize * channels), y * imageSize * channels);
  }
  return out;
}

/** Decode one file to HWC uint8 with `channels` channels; the Error names the file. */
export async function readImage(file: string, channels: 1 | 3): Promise<{ data: Uint8Array; width: number; height: number }> {
  let decoded: { data: Buffer; info: sharp.OutputInfo };
  try {
    let pipeline = sharp(file).removeAlpha();
    pipeline = channels === 1 ? pipeline.grayscale() : pipeline.toColourspace('srgb');
    decoded = await pipeline.raw().toBuffer({ resolveWithObject: true });
  } catch (err) {
    throw new Error(`cannot decode image ${file}: ${(err as Error).message}; replace or delete the file`);
  }
  const { width, height } = decoded.info;
  const got = decoded.info.channels;
  let data = new Uint8Array(decoded.data.buffer, decoded.data.byteOffset, decoded.data.length);
  if (got !== channels) {
    // a gray source asked for as RGB: repeat the gray value
    if (got !== 1 || channels !== 3) throw new Error(`cannot decode image ${file}: got ${got} channels, expected ${channels}`);
    const rgb = new Uint8Array(width * height * 3);
    for (let i = 0; i < width * height; i++) rgb[3 * i] = rgb[3 * i + 1] = rgb[3 * i + 2] = data[i];
    data = rgb;
  }
  return { data, width, height };
}

/** Load an image folder into memory, every image center-cropped and resized to imageSize. */
export async function loadImageFolder(root: string, options: ImageFolderOptions): Promise<ImageFolderDataset> {
  const { imageSize } = options;
  const channels = options.channels ?? 3;
  if (!Number.isInteger(imageSize) || imageSize < 1) throw new Error(`loadImageFolder: imageSize must be a positive integer, got ${String(imageSize)}`);
  if (channels !== 1 && channels !== 3) throw new Error(`loadImageFolder: channels must be 1 or 3, got ${String(channels)}`);
  const { classNames, files, labels } = listImageFolder(root);
  const per = imageSize * imageSize * channels;
  const images = new Uint8Array(files.length * per);
  let next = 0;
  const worker = async () => {
    while (next < files.length) {
      const i = next++;
      const { data, width, height } = await readImage(files[i], channels);
      images.set(await centerCropArr(data, width, height, channels, imageSize), i * per);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, options.concurrency ?? 8) }, worker));
  return { images, labels: Int32Array.from(labels), count: files.length, height: imageSize, width: imageSize, channels, classNames, files };
}

/** Mirror one HWC image left-right in place (the official RandomHorizontalFlip). */
export function flipHorizontal(image: Uint8Array, width: number, height: number, channels: number): void {
  for (let y = 0; y < height; y++) {
    const row = y * width * channels;
    for (let x = 0; x < width >> 1; x++) {
      const a = row + x * channels;
      const b = row + (width - 1 - x) * channels;
      for (let c = 0; c < channels; c++) {
        const t = image[a + c];
        image[a + c] = image[b + c];
        image[b + c] = t;
      }
    }
  }
}
