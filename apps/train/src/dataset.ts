/**
 * Training data: MNIST, Fashion-MNIST or an image folder as NHWC uint8 images, and the batches of a
 * run. Batch k is a pure function of (seed, k) plus the flip draws of the run's RNG, so a resumed run
 * sees exactly the batches the uninterrupted run would have seen.
 */
import * as fs from 'fs';
import { flipHorizontal, loadFashionMnist, loadImageFolder, loadMnist, MNIST_CLASS_NAMES, FASHION_MNIST_CLASS_NAMES, resizeImages } from '@causalfusion/data';
import { createRng, Rng } from '@causalfusion/rng';
import type { TrainConfig } from './config';

export interface TrainingData {
  /** `mnist`, `fashion-mnist` or the folder path. */
  name: string;
  /** count * size * size * channels, NHWC. */
  images: Uint8Array;
  labels: ArrayLike<number>;
  count: number;
  size: number;
  channels: 1 | 3;
  classNames: readonly string[];
}

/** Load the training split named by `config.data`. */
export async function loadTrainingData(config: Pick<TrainConfig, 'data' | 'imageSize' | 'channels'>): Promise<TrainingData> {
  const name = config.data;
  if (name === 'mnist' || name === 'fashion-mnist') {
    if (config.channels !== 1) throw new Error(`${name} images have 1 channel; drop --channels (got ${config.channels})`);
    const ds = name === 'mnist' ? loadMnist('train') : loadFashionMnist('train');
    // --image-size other than 28 resizes every image once here (area filter when shrinking)
    const images = config.imageSize === 28 ? ds.images : resizeImages(ds.images, 28, config.imageSize);
    return {
      name, images, labels: ds.labels, count: ds.count, size: config.imageSize, channels: 1,
      classNames: name === 'mnist' ? MNIST_CLASS_NAMES : FASHION_MNIST_CLASS_NAMES,
    };
  }
  if (!fs.existsSync(name)) {
    throw new Error(`--data ${name}: not mnist, fashion-mnist or an existing folder; give a folder with one sub-folder of PNG/JPEG images per class`);
  }
  const ds = await loadImageFolder(name, { imageSize: config.imageSize, channels: config.channels });
  return { name, images: ds.images, labels: ds.labels, count: ds.count, size: config.imageSize, channels: ds.channels, classNames: ds.classNames };
}

/** Epoch-shuffled batches: every image once per epoch, in the order of a per-epoch seeded permutation. */
export class BatchSampler {
  private epoch = -1;
  private order: Int32Array = new Int32Array(0);

  constructor(
    readonly data: TrainingData,
    readonly batchSize: number,
    readonly seed: number,
    readonly flip: boolean,
  ) {
    if (data.count === 0) throw new Error(`the training data ${data.name} has no images`);
  }

  private indexAt(position: number): number {
    const epoch = Math.floor(position / this.data.count);
    if (epoch !== this.epoch) {
      this.epoch = epoch;
      this.order = createRng(`${this.seed}:epoch:${epoch}`).permutation(this.data.count);
    }
    return this.order[position % this.data.count];
  }

  /** Batch `step` (0-based): images NHWC and labels; flips (when on) are drawn from `rng`. */
  batch(step: number, rng: Rng): { images: Uint8Array; labels: Int32Array } {
    const { size, channels } = this.data;
    const per = size * size * channels;
    const images = new Uint8Array(this.batchSize * per);
    const labels = new Int32Array(this.batchSize);
    for (let j = 0; j < this.batchSize; j++) {
      const i = this.indexAt(step * this.batchSize + j);
      const image = this.data.images.slice(i * per, (i + 1) * per);
      if (this.flip && rng.uniform() < 0.5) flipHorizontal(image, size, size, channels);
      images.set(image, j * per);
      labels[j] = this.data.labels[i];
    }
    return { images, labels };
  }
}
