/**
 * Folders of images for FID: sorted file names (like pytorch-fid's sorted glob), decoded by sharp to 8-bit
 * RGB. Grayscale images are replicated to three channels and alpha is dropped, as PIL's convert('RGB').
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { RgbImage } from './extractor';

export const IMAGE_EXTENSIONS = ['.png', '.jpg', '.jpeg', '.webp', '.tif', '.tiff'];

/**
 * The image files of `dir`, sorted by name. Hidden files (".DS_Store") are skipped; anything else that is
 * not an image file (a sub-folder, notes.txt) is an error naming it, so a stray file cannot change the FID.
 */
export function listImageFiles(dir: string): string[] {
  let entries: fs.Dirent[];
  try {
    entries = fs.readdirSync(dir, { withFileTypes: true });
  } catch (err) {
    throw new Error(`cannot read image folder ${dir}: ${(err as Error).message}`);
  }
  const files: string[] = [];
  for (const entry of entries) {
    if (entry.name.startsWith('.')) continue;
    const full = path.join(dir, entry.name);
    const ext = path.extname(entry.name).toLowerCase();
    if (!(entry.isFile() || entry.isSymbolicLink()) || !IMAGE_EXTENSIONS.includes(ext)) {
      throw new Error(`${full} is not an image file (expected ${IMAGE_EXTENSIONS.join(', ')}); move it out of the folder`);
    }
    files.push(full);
  }
  if (files.length === 0) throw new Error(`image folder ${dir} contains no images (${IMAGE_EXTENSIONS.join(', ')})`);
  return files.sort();
}

type Sharp = typeof import('sharp');
let sharpModule: Sharp | undefined;

/** Decodes one image file to 8-bit RGB. */
export async function decodeImage(file: string): Promise<RgbImage> {
  sharpModule ??= (await import('sharp')).default as unknown as Sharp;
  let decoded: { data: Buffer; info: { width: number; height: number; channels: number } };
  try {
    decoded = await sharpModule(file).removeAlpha().raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true });
  } catch (err) {
    throw new Error(`cannot decode image ${file}: ${(err as Error).message}`);
  }
  const { width, height, channels } = decoded.info;
  const src = decoded.data;
  if (channels === 3) return { width, height, data: new Uint8Array(src.buffer, src.byteOffset, src.byteLength) };
  if (channels !== 1) throw new Error(`image ${file} decodes to ${channels} channels; only grayscale and RGB are supported`);
  const data = new Uint8Array(width * height * 3);
  for (let p = 0; p < width * height; p++) {
    data[p * 3] = src[p];
    data[p * 3 + 1] = src[p];
    data[p * 3 + 2] = src[p];
  }
  return { width, height, data };
}
