/**
 * Latent caches: a dataset encoded once by a VAE, so latent-space training never runs the encoder. As
 * MAR's cached training, each image keeps its posterior (mean and logvar, not one sample): training draws
 * a fresh z = mean + exp(0.5 logvar) * eps every time it sees the image. With flip augmentation the
 * horizontally flipped image is encoded too and stored beside it (training picks one of the two).
 *
 * File layout (little-endian):
 *
 *   bytes 0-7        "CFLATENT"
 *   bytes 8-11       uint32 H, the byte length of the header
 *   bytes 12-(12+H)  the header, UTF-8 JSON (`LatentCacheHeader`)
 *   labelsOffset     = 12 + H rounded up to 8: int32 label of each image
 *   dataOffset       = labelsOffset + 4 * count rounded up to 64: the records, one per image in order,
 *                      each `views` x [mean C*h*w, logvar C*h*w] float32 (view 0 the image, view 1 flipped)
 *
 * Writing goes to `<out>.partial` in batches; after each batch `<out>.progress.json` records how many
 * images are done, so an interrupted run resumes there. The finished file is renamed into place.
 */
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { centerCropArr, flipHorizontal, listImageFolder, readImage } from '@causalfusion/data';
import { makeDirs, writeFileAtomic } from '@causalfusion/safetensors';
import { latentSizeOf, type VaeConfig } from './config';
import { imagesToNchw } from './tokens';
import type { Vae } from './vae';

export const LATENT_CACHE_MAGIC = 'CFLATENT';
export const LATENT_CACHE_FORMAT = 'causalfusion-latents';

export interface LatentCacheHeader {
  format: typeof LATENT_CACHE_FORMAT;
  version: 1;
  /** The VAE that encoded the images (its vae.json, less the file format fields). */
  vae: Pick<VaeConfig, 'name' | 'scaleFactor' | 'latentChannels' | 'downsample' | 'imageSize'>;
  /** [C, h, w] of one latent. */
  latentShape: [number, number, number];
  count: number;
  classNames: string[];
  /** Whether each record also holds the flipped image's posterior. */
  flip: boolean;
  /** Per view: mean, then logvar (clamped to [-30, 20]). */
  values: ['mean', 'logvar'];
  dtype: 'float32';
  /** What was encoded: the folder and a fingerprint of its file list (names and sizes). */
  source: { data: string; fingerprint: string };
}

/** Byte offsets of the labels, the records and the size of one record. */
export function cacheLayout(header: Pick<LatentCacheHeader, 'latentShape' | 'count' | 'flip'>, headerBytes: number) {
  const align = (n: number, to: number) => Math.ceil(n / to) * to;
  const labelsOffset = align(12 + headerBytes, 8);
  const dataOffset = align(labelsOffset + 4 * header.count, 64);
  const [C, h, w] = header.latentShape;
  const views = header.flip ? 2 : 1;
  const latentLength = C * h * w;
  const recordBytes = views * 2 * latentLength * 4;
  return { labelsOffset, dataOffset, views, latentLength, recordBytes, totalBytes: dataOffset + header.count * recordBytes };
}

function serializeHeader(header: LatentCacheHeader, labels: ArrayLike<number>): { prefix: Buffer; layout: ReturnType<typeof cacheLayout> } {
  const json = Buffer.from(JSON.stringify(header), 'utf8');
  const layout = cacheLayout(header, json.length);
  const prefix = Buffer.alloc(layout.dataOffset);
  prefix.write(LATENT_CACHE_MAGIC, 0, 'latin1');
  prefix.writeUInt32LE(json.length, 8);
  json.copy(prefix, 12);
  for (let i = 0; i < header.count; i++) prefix.writeInt32LE(labels[i], layout.labelsOffset + 4 * i);
  return { prefix, layout };
}

function readPrefix(fd: number, file: string): { header: LatentCacheHeader; headerBytes: number } {
  const head = Buffer.alloc(12);
  if (fs.readSync(fd, head, 0, 12, 0) !== 12 || head.toString('latin1', 0, 8) !== LATENT_CACHE_MAGIC) {
    throw new Error(
      `${file} is not a latent cache (no ${LATENT_CACHE_MAGIC} signature); make one with \`causalfusion encode --data DIR --vae DIR --out ${path.basename(file)}\``,
    );
  }
  const headerBytes = head.readUInt32LE(8);
  const json = Buffer.alloc(headerBytes);
  if (fs.readSync(fd, json, 0, headerBytes, 12) !== headerBytes) throw new Error(`${file}: the latent cache is truncated (in its header)`);
  let header: LatentCacheHeader;
  try {
    header = JSON.parse(json.toString('utf8'));
  } catch (e) {
    throw new Error(`${file}: the latent cache header is not valid JSON (${(e as Error).message})`);
  }
  if (header.format !== LATENT_CACHE_FORMAT || header.version !== 1) {
    throw new Error(`${file}: unknown latent cache format ${JSON.stringify(header.format)} version ${JSON.stringify(header.version)}`);
  }
  return { header, headerBytes };
}

/** A latent cache opened for reading; records are read on demand, so it need not fit in memory. */
export class LatentCache {
  readonly labels: Int32Array;
  readonly views: number;
  /** C * h * w. */
  readonly latentLength: number;
  private readonly dataOffset: number;
  private readonly recordBytes: number;
  private fd: number | null;

  private constructor(
    readonly file: string,
    fd: number,
    readonly header: LatentCacheHeader,
    headerBytes: number,
  ) {
    this.fd = fd;
    const layout = cacheLayout(header, headerBytes);
    const size = fs.fstatSync(fd).size;
    if (size !== layout.totalBytes) {
      throw new Error(`${file}: the latent cache should hold ${layout.totalBytes} bytes (${header.count} images), it has ${size}; re-run causalfusion encode`);
    }
    const labels = Buffer.alloc(4 * header.count);
    fs.readSync(fd, labels, 0, labels.length, layout.labelsOffset);
    this.labels = new Int32Array(header.count);
    for (let i = 0; i < header.count; i++) this.labels[i] = labels.readInt32LE(4 * i);
    this.views = layout.views;
    this.latentLength = layout.latentLength;
    this.dataOffset = layout.dataOffset;
    this.recordBytes = layout.recordBytes;
  }

  static open(file: string): LatentCache {
    if (!fs.existsSync(file) || !fs.statSync(file).isFile()) {
      throw new Error(`latent cache ${file} does not exist; make it with \`causalfusion encode --data DIR --vae DIR --out ${file}\``);
    }
    const fd = fs.openSync(file, 'r');
    try {
      const { header, headerBytes } = readPrefix(fd, file);
      return new LatentCache(file, fd, header, headerBytes);
    } catch (e) {
      fs.closeSync(fd);
      throw e;
    }
  }

  get count(): number {
    return this.header.count;
  }

  get classNames(): readonly string[] {
    return this.header.classNames;
  }

  /** The posterior of image i (view 1 = its flipped copy, when the cache has flips). */
  read(i: number, view = 0): { mean: Float32Array; logvar: Float32Array } {
    if (this.fd === null) throw new Error(`${this.file}: the latent cache is closed`);
    if (!Number.isInteger(i) || i < 0 || i >= this.count) throw new Error(`latent ${i} is out of range: the cache holds ${this.count}`);
    if (view !== 0 && view !== 1) throw new Error(`view must be 0 (the image) or 1 (flipped), got ${view}`);
    if (view >= this.views) throw new Error(`${this.file} was encoded without flips; only view 0 exists`);
    const n = this.latentLength;
    const buf = Buffer.alloc(2 * n * 4);
    fs.readSync(this.fd, buf, 0, buf.length, this.dataOffset + i * this.recordBytes + view * buf.length);
    const values = new Float32Array(2 * n);
    for (let j = 0; j < 2 * n; j++) values[j] = buf.readFloatLE(4 * j);
    return { mean: values.subarray(0, n), logvar: values.subarray(n) };
  }

  close(): void {
    if (this.fd !== null) fs.closeSync(this.fd);
    this.fd = null;
  }
}

export function openLatentCache(file: string): LatentCache {
  return LatentCache.open(file);
}

/**
 * Writes a cache record by record into `<out>.partial`, resuming a previous partial file with the same
 * header. Records are appended with `append`; `finish` renames the file into place.
 */
export class LatentCacheWriter {
  /** Images already in the file (from an interrupted run, then from `append`). */
  done: number;
  private readonly partial: string;
  private readonly progressFile: string;
  private readonly layout: ReturnType<typeof cacheLayout>;
  private fd: number;

  constructor(
    readonly out: string,
    readonly header: LatentCacheHeader,
    labels: ArrayLike<number>,
  ) {
    if (fs.existsSync(out)) throw new Error(`${out} already exists; delete it or pick another --out`);
    this.partial = `${out}.partial`;
    this.progressFile = `${out}.progress.json`;
    const { prefix, layout } = serializeHeader(header, labels);
    this.layout = layout;
    this.done = this.resumable(prefix);
    if (this.done > 0) {
      this.fd = fs.openSync(this.partial, 'r+');
      fs.ftruncateSync(this.fd, layout.dataOffset + this.done * layout.recordBytes); // drop a half-written batch
    } else {
      makeDirs(path.dirname(path.resolve(out)));
      this.fd = fs.openSync(this.partial, 'w');
      fs.writeSync(this.fd, prefix, 0, prefix.length, 0);
      this.saveProgress();
    }
  }

  /** How many images a partial file with the same header already holds (0 when there is none). */
  private resumable(prefix: Buffer): number {
    if (!fs.existsSync(this.partial) || !fs.existsSync(this.progressFile)) return 0;
    try {
      const progress = JSON.parse(fs.readFileSync(this.progressFile, 'utf8')) as { done?: unknown };
      const fd = fs.openSync(this.partial, 'r');
      const existing = Buffer.alloc(prefix.length);
      const read = fs.readSync(fd, existing, 0, prefix.length, 0);
      const size = fs.fstatSync(fd).size;
      fs.closeSync(fd);
      const done = Number(progress.done);
      const sameHeader = read === prefix.length && existing.equals(prefix);
      if (!sameHeader || !Number.isInteger(done) || done < 0 || done > this.header.count) return 0;
      return size >= this.layout.dataOffset + done * this.layout.recordBytes ? done : 0;
    } catch {
      return 0;
    }
  }

  private saveProgress(): void {
    writeFileAtomic(this.progressFile, JSON.stringify({ done: this.done, count: this.header.count }) + '\n');
  }

  /** Append the next records: per image and view, mean then logvar (`latentLength` values each). */
  append(records: Float32Array): void {
    const perRecord = this.layout.recordBytes / 4;
    if (records.length % perRecord !== 0) throw new Error(`append: ${records.length} values are not whole records of ${perRecord}`);
    const n = records.length / perRecord;
    if (this.done + n > this.header.count) throw new Error(`append: ${this.done + n} records for a cache of ${this.header.count}`);
    const buf = Buffer.alloc(records.length * 4);
    for (let i = 0; i < records.length; i++) buf.writeFloatLE(records[i], 4 * i);
    fs.writeSync(this.fd, buf, 0, buf.length, this.layout.dataOffset + this.done * this.layout.recordBytes);
    // on disk before the progress file says so
    fs.fsyncSync(this.fd);
    this.done += n;
    this.saveProgress();
  }

  /** All records written: put the file in place. */
  finish(): void {
    if (this.done !== this.header.count) throw new Error(`finish: ${this.done} of ${this.header.count} records written`);
    fs.fsyncSync(this.fd);
    this.close();
    fs.renameSync(this.partial, this.out);
    fs.rmSync(this.progressFile, { force: true });
  }

  /** Stop without finishing (the partial file and progress stay for a resume). */
  close(): void {
    if (this.fd >= 0) fs.closeSync(this.fd);
    this.fd = -1;
  }
}

export interface EncodeFolderOptions {
  /** Image folder: one sub-folder per class (the ImageFolder layout). */
  data: string;
  vae: Vae;
  out: string;
  /** Images per batch (each batch is written and recorded as done; default 16). */
  batchSize?: number;
  /** Store the flipped image's posterior as a second view (default true, as MAR's cache). */
  flip?: boolean;
  /** Encode only the first `limit` images (for trials). */
  limit?: number;
  onProgress?: (done: number, total: number) => void;
}

/** A fingerprint of an image list (relative names and byte sizes): a resumed run must see the same files. */
function fingerprint(root: string, files: readonly string[]): string {
  const hash = crypto.createHash('sha256');
  for (const f of files) hash.update(`${path.relative(root, f)}\0${fs.statSync(f).size}\n`);
  return hash.digest('hex').slice(0, 16);
}

/**
 * Encode an image folder into a latent cache: each image center-cropped and resized to the VAE's image
 * size (the official `center_crop_arr`), encoded in batches, resumable. Returns the header and how many
 * images an interrupted run had already done.
 */
export async function encodeImageFolder(options: EncodeFolderOptions): Promise<{ header: LatentCacheHeader; resumedAt: number }> {
  const { vae } = options;
  const batchSize = options.batchSize ?? 16;
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new Error(`batch size must be a positive integer, got ${batchSize}`);
  const listed = listImageFolder(options.data);
  let { files, labels } = listed;
  if (options.limit !== undefined) {
    if (!Number.isInteger(options.limit) || options.limit < 1) throw new Error(`limit must be a positive integer, got ${options.limit}`);
    files = files.slice(0, options.limit);
    labels = labels.slice(0, options.limit);
  }
  const S = vae.imageSize;
  const C = vae.latentChannels;
  const h = latentSizeOf(vae.config);
  const flip = options.flip ?? true;
  const { name, scaleFactor, latentChannels, downsample, imageSize } = vae.config;
  const header: LatentCacheHeader = {
    format: LATENT_CACHE_FORMAT,
    version: 1,
    vae: { name, scaleFactor, latentChannels, downsample, imageSize },
    latentShape: [C, h, h],
    count: files.length,
    classNames: listed.classNames,
    flip,
    values: ['mean', 'logvar'],
    dtype: 'float32',
    source: { data: path.resolve(options.data), fingerprint: fingerprint(options.data, files) },
  };
  const writer = new LatentCacheWriter(options.out, header, labels);
  const resumedAt = writer.done;
  const per = S * S * 3;
  const n = C * h * h;
  try {
    options.onProgress?.(writer.done, files.length);
    while (writer.done < files.length) {
      const from = writer.done;
      const count = Math.min(batchSize, files.length - from);
      const views = flip ? 2 : 1;
      // originals first, then their flipped copies, in one encoder call
      const pixels = new Uint8Array(views * count * per);
      await Promise.all(
        Array.from({ length: count }, async (_, j) => {
          const { data, width, height } = await readImage(files[from + j], 3);
          const img = await centerCropArr(data, width, height, 3, S);
          pixels.set(img, j * per);
          if (flip) {
            const flipped = img.slice();
            flipHorizontal(flipped, S, S, 3);
            pixels.set(flipped, (count + j) * per);
          }
        }),
      );
      const posterior = await vae.encode(imagesToNchw(pixels, S));
      const records = new Float32Array(count * views * 2 * n);
      for (let j = 0; j < count; j++)
        for (let v = 0; v < views; v++) {
          const src = (v * count + j) * n;
          const dst = (j * views + v) * 2 * n;
          records.set(posterior.mean.subarray(src, src + n), dst);
          records.set(posterior.logvar.subarray(src, src + n), dst + n);
        }
      writer.append(records);
      options.onProgress?.(writer.done, files.length);
    }
    writer.finish();
  } catch (e) {
    writer.close();
    throw e;
  }
  return { header, resumedAt };
}
