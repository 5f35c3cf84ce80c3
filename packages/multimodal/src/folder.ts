/**
 * The image-text folder format for user data:
 *
 *   dir/captions.jsonl   one JSON object per line: {"file": "0001.png", "captions": ["a large 3 ...", ...]}
 *   dir/0001.png ...     the images (PNG / JPEG; converted to gray and resized to the canvas on reading)
 *
 * `"caption": "..."` (one string) is accepted in place of `"captions"`.
 */
import * as fs from 'fs';
import * as path from 'path';
import sharp from 'sharp';
import { makeDirs, writeFileAtomic } from '@causalfusion/safetensors';

export const CAPTIONS_FILE = 'captions.jsonl';

export interface ImageTextItem {
  file: string;
  captions: string[];
  /** height x width gray levels (read), or what to write. */
  image: Uint8Array;
}

/** Write images (gray, height x width each) and captions.jsonl. */
export async function writeImageTextFolder(
  dir: string,
  items: { image: Uint8Array; captions: string[]; file?: string }[],
  height: number,
  width: number,
): Promise<void> {
  makeDirs(dir);
  const lines: string[] = [];
  const digits = String(items.length).length;
  for (let i = 0; i < items.length; i++) {
    const it = items[i];
    if (it.image.length !== height * width) throw new RangeError(`item ${i}: the image has ${it.image.length} values, expected ${height}x${width}`);
    const file = it.file ?? `${String(i).padStart(Math.max(4, digits), '0')}.png`;
    writeFileAtomic(
      path.join(dir, file),
      await sharp(Buffer.from(it.image), { raw: { width, height, channels: 1 } })
        .toColourspace('b-w')
        .png()
        .toBuffer(),
    );
    lines.push(JSON.stringify({ file, captions: it.captions }));
  }
  writeFileAtomic(path.join(dir, CAPTIONS_FILE), lines.join('\n') + '\n');
}

/** Read an image-text folder; every image becomes height x width gray. Errors name the file and line. */
export async function readImageTextFolder(dir: string, height: number, width: number): Promise<ImageTextItem[]> {
  const index = path.join(dir, CAPTIONS_FILE);
  if (!fs.existsSync(index)) throw new Error(`${dir} is not an image-text folder: ${CAPTIONS_FILE} is missing`);
  const out: ImageTextItem[] = [];
  const lines = fs.readFileSync(index, 'utf8').split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].trim();
    if (!line) continue;
    const where = `${index}:${i + 1}`;
    let entry: { file?: unknown; captions?: unknown; caption?: unknown };
    try {
      entry = JSON.parse(line);
    } catch (e) {
      throw new Error(`${where}: not JSON (${(e as Error).message})`);
    }
    const captions = entry.captions ?? (entry.caption !== undefined ? [entry.caption] : undefined);
    if (typeof entry.file !== 'string' || !Array.isArray(captions) || !captions.length || captions.some((c) => typeof c !== 'string')) {
      throw new Error(`${where}: expected {"file": "<image>", "captions": ["...", ...]}`);
    }
    const file = path.join(dir, entry.file);
    if (!fs.existsSync(file)) throw new Error(`${where}: ${entry.file} does not exist in ${dir}`);
    const { data, info } = await sharp(file)
      .flatten({ background: '#000000' })
      .toColourspace('b-w')
      .resize(width, height, { fit: 'fill' })
      .raw()
      .toBuffer({ resolveWithObject: true });
    const image = new Uint8Array(height * width);
    for (let p = 0; p < image.length; p++) image[p] = data[p * info.channels];
    out.push({ file: entry.file, captions: captions as string[], image });
  }
  if (!out.length) throw new Error(`${index} lists no images`);
  return out;
}
