/**
 * Output paths, checked before any work starts: a file the command will write must not be a folder, its
 * folder must be one (or creatable) and writable; a folder it will write must not be a file. Images are
 * written in the format their extension names (PNG, JPEG, WebP); any other extension is refused up front.
 * Every problem is one UsageError line (exit code 2) that names the flag, the path and the fix.
 */
import * as fs from 'fs';
import * as path from 'path';
import type sharp from 'sharp';
import { UsageError } from './errors';
import { LIMITS, MAX_SIDE } from './limits';

export type ImageFormat = 'png' | 'jpeg' | 'webp';

/** File extensions -> the format written. */
export const IMAGE_EXTENSIONS: Record<string, ImageFormat> = { '.png': 'png', '.jpg': 'jpeg', '.jpeg': 'jpeg', '.webp': 'webp' };

const EXTENSION_LIST = '.png, .jpg, .jpeg or .webp';

/** The format an image file name asks for, or a UsageError listing the ones the CLI writes. */
export function imageFormatOf(file: string, flag = '--out'): ImageFormat {
  const ext = path.extname(file).toLowerCase();
  const format = IMAGE_EXTENSIONS[ext];
  if (!format) {
    throw new UsageError(
      ext
        ? `${flag}: cannot write ${ext} images (${file}); use a name ending in ${EXTENSION_LIST}`
        : `${flag}: ${file} has no image extension; use a name ending in ${EXTENSION_LIST}`,
    );
  }
  return format;
}

/** Set the encoder of a sharp pipeline to `format` (WebP lossless, JPEG quality 95). */
export function encodeFormat(img: sharp.Sharp, format: ImageFormat): sharp.Sharp {
  switch (format) {
    case 'jpeg':
      return img.jpeg({ quality: 95 });
    case 'webp':
      return img.webp({ lossless: true });
    default:
      return img.png();
  }
}

/** The nearest existing ancestor of `abs` (itself when it exists). */
function nearestExisting(abs: string): { dir: string; stat: fs.Stats } {
  let p = abs;
  for (;;) {
    try {
      return { dir: p, stat: fs.statSync(p) };
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      const parent = path.dirname(p);
      // ENOTDIR: a file stands somewhere above; keep walking up to find it and say so
      if ((code !== 'ENOENT' && code !== 'ENOTDIR') || parent === p) throw e;
      p = parent;
    }
  }
}

function reason(e: unknown): string {
  const err = e as NodeJS.ErrnoException;
  return err.code ?? err.message.split('\n')[0];
}

/**
 * Check that folder `dir` exists or can be created, and that files can be written in it: the nearest
 * existing ancestor must be a folder, and a probe (a temporary folder or file, removed at once) must succeed
 * there. Nothing is left behind.
 */
function checkWritableFolder(dir: string, flag: string, shown: string): void {
  const abs = path.resolve(dir);
  let found;
  try {
    found = nearestExisting(abs);
  } catch (e) {
    throw new UsageError(`${flag}: cannot write ${shown}: ${reason(e)}; choose another place`);
  }
  if (!found.stat.isDirectory()) {
    throw new UsageError(`${flag}: cannot write ${shown}: ${found.dir} is a file, not a folder; choose another place`);
  }
  try {
    if (found.dir === abs) {
      const probe = path.join(abs, `.causalfusion-probe-${process.pid}-${Date.now()}`);
      fs.closeSync(fs.openSync(probe, 'wx'));
      fs.unlinkSync(probe);
    } else {
      // folders will be created under found.dir: try one
      fs.rmdirSync(fs.mkdtempSync(path.join(found.dir, '.causalfusion-probe-')));
    }
  } catch (e) {
    const what = found.dir === abs ? `cannot write files in ${found.dir}` : `cannot create folders in ${found.dir}`;
    throw new UsageError(`${flag}: cannot write ${shown}: ${what} (${reason(e)}); choose another place`);
  }
}

/** fs.statSync, or undefined where nothing exists (or it cannot be seen). */
export function statOrUndefined(file: string): fs.Stats | undefined {
  try {
    return fs.statSync(file);
  } catch {
    return undefined;
  }
}

/**
 * A file the command will write (replacing it when it exists): not a folder, not a device, in a folder that
 * exists or can be created and is writable. `example` is a file name suggested when `file` is a folder.
 */
export function checkOutFile(file: string, flag = '--out', example = 'out.png'): void {
  if (file === '' || /[\\/]$/.test(file)) throw new UsageError(`${flag}: '${file}' is not a file name; give one such as ${path.join(file || '.', example)}`);
  const abs = path.resolve(file);
  const stat = statOrUndefined(abs);
  if (stat?.isDirectory()) throw new UsageError(`${flag}: ${file} is a folder; give a file name such as ${path.join(file, example)}`);
  if (stat && !stat.isFile()) throw new UsageError(`${flag}: ${file} exists and is not a regular file; give another file name`);
  checkWritableFolder(path.dirname(abs), flag, file);
}

/** An image the command will write: a known extension, a writable place, and a size the format can hold. */
export function checkImageOut(file: string, flag = '--out', size?: { width: number; height: number }): ImageFormat {
  checkOutFile(file, flag, `image${IMAGE_EXTENSIONS[path.extname(file).toLowerCase()] ? path.extname(file) : '.png'}`);
  const format = imageFormatOf(file, flag);
  if (size) checkImageSize(size.width, size.height, format, flag);
  return format;
}

/** A written image's size against the format's and the CLI's limits. */
export function checkImageSize(width: number, height: number, format: ImageFormat, flag = '--out'): void {
  const side = MAX_SIDE[format];
  if (width > side || height > side) {
    throw new UsageError(
      `${flag}: the image would be ${width}x${height} pixels; ${format.toUpperCase()} holds at most ${side} a side; ask for fewer images or a smaller --zoom`,
    );
  }
  if (width * height > LIMITS.imagePixels) {
    throw new UsageError(
      `${flag}: the image would be ${width}x${height} pixels, over the limit of ${LIMITS.imagePixels} (64 megapixels); ask for fewer images or a smaller --zoom`,
    );
  }
}

/** A folder the command will write into: not a file, creatable or writable. */
export function checkOutDir(dir: string, flag = '--out'): void {
  if (dir === '') throw new UsageError(`${flag}: give a folder`);
  const abs = path.resolve(dir);
  const stat = statOrUndefined(abs);
  if (stat && !stat.isDirectory()) throw new UsageError(`${flag}: ${dir} is a file, not a folder; give a folder name`);
  checkWritableFolder(abs, flag, dir);
}
