/**
 * Training data: MNIST, Fashion-MNIST or an image folder as NHWC uint8 images, and the batches of a
 * run. Batch k is a pure function of (seed, k) plus the flip draws of the run's RNG, so a resumed run
 * sees exactly the batches the uninterrupted run would have seen.
 */
import * as fs from 'fs';
import { flipHorizontal, loadFashionMnist, loadImageFolder, loadMnist, MNIST_CLASS_NAMES, FASHION_MNIST_CLASS_NAMES, resizeImages } from '@causalfusion/data';
import { createRng, Rng } from '@causalfusion/rng';
import { openLatentCache, samplePosterior, type LatentCache } from '@causalfusion/vae';
import { vaeOf, type TrainConfig } from './config';

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
      name,
      images,
      labels: ds.labels,
      count: ds.count,
      size: config.imageSize,
      channels: 1,
      classNames: name === 'mnist' ? MNIST_CLASS_NAMES : FASHION_MNIST_CLASS_NAMES,
    };
  }
  if (!fs.existsSync(name)) {
    throw new Error(`--data ${name}: not mnist, fashion-mnist or an existing folder; give a folder with one sub-folder of PNG/JPEG images per class`);
  }
  const ds = await loadImageFolder(name, { imageSize: config.imageSize, channels: config.channels });
  return { name, images: ds.images, labels: ds.labels, count: ds.count, size: config.imageSize, channels: ds.channels, classNames: ds.classNames };
}

/** A latent cache (`causalfusion encode`) as training data, for `--tokenizer vae:DIR`. */
export interface LatentTrainingData {
  /** The cache file. */
  name: string;
  cache: LatentCache;
  count: number;
  classNames: readonly string[];
  /** The VAE's scale factor: training sees z * scale. */
  scale: number;
}

/** Open the latent cache of a `--tokenizer vae:DIR` run and check that DIR's VAE made it. */
export function loadLatentData(config: Pick<TrainConfig, 'data' | 'tokenizer'>): LatentTrainingData {
  const vae = vaeOf(config);
  if (!vae) throw new Error('loadLatentData: the run has no VAE (--tokenizer pixel)');
  if (config.data === 'mnist' || config.data === 'fashion-mnist' || !fs.existsSync(config.data) || fs.statSync(config.data).isDirectory()) {
    throw new Error(
      `--tokenizer ${config.tokenizer} trains on a latent cache, and --data ${config.data} is not one; ` +
        `encode the images once with \`causalfusion encode --data <image folder> --vae ${vae.dir} --out latents.bin\` and pass --data latents.bin`,
    );
  }
  const cache = openLatentCache(config.data);
  const h = cache.header;
  const c = vae.config;
  if (h.vae.name !== c.name || h.vae.latentChannels !== c.latentChannels || h.vae.imageSize !== c.imageSize || h.vae.downsample !== c.downsample) {
    cache.close();
    throw new Error(
      `${config.data} holds latents of the VAE ${h.vae.name} (${h.latentShape.join('x')}), not of ${c.name} in ${vae.dir}; encode the data with this VAE`,
    );
  }
  return { name: config.data, cache, count: cache.count, classNames: h.classNames, scale: c.scaleFactor };
}

/** Every index once per epoch, in the order of a per-epoch seeded permutation. */
class EpochOrder {
  private epoch = -1;
  private order: Int32Array = new Int32Array(0);

  constructor(
    readonly count: number,
    readonly seed: number,
  ) {}

  indexAt(position: number): number {
    const epoch = Math.floor(position / this.count);
    if (epoch !== this.epoch) {
      this.epoch = epoch;
      this.order = createRng(`${this.seed}:epoch:${epoch}`).permutation(this.count);
    }
    return this.order[position % this.count];
  }
}

/**
 * Batches of latents, epoch-shuffled as the pixel batches: for each image (the flipped copy instead with
 * probability 1/2 when the cache has flips) a fresh posterior sample z = mean + exp(0.5 logvar) * eps
 * drawn from `rng`, times the scale factor: NCHW, what the model trains on.
 */
export class LatentBatchSampler {
  private readonly order: EpochOrder;

  constructor(
    readonly data: LatentTrainingData,
    readonly batchSize: number,
    readonly seed: number,
  ) {
    if (data.count === 0) throw new Error(`the latent cache ${data.name} has no images`);
    this.order = new EpochOrder(data.count, seed);
  }

  batch(step: number, rng: Rng): { x: Float32Array; labels: Int32Array } {
    const { cache, scale } = this.data;
    const n = cache.latentLength;
    const x = new Float32Array(this.batchSize * n);
    const labels = new Int32Array(this.batchSize);
    const eps = new Float32Array(n);
    for (let j = 0; j < this.batchSize; j++) {
      const i = this.order.indexAt(step * this.batchSize + j);
      const view = cache.views === 2 && rng.uniform() < 0.5 ? 1 : 0;
      const z = samplePosterior(cache.read(i, view), rng.fillNormal(eps));
      for (let k = 0; k < n; k++) x[j * n + k] = z[k] * scale;
      labels[j] = cache.labels[i];
    }
    return { x, labels };
  }
}

/** Epoch-shuffled batches: every image once per epoch, in the order of a per-epoch seeded permutation. */
export class BatchSampler {
  private readonly order: EpochOrder;

  constructor(
    readonly data: TrainingData,
    readonly batchSize: number,
    readonly seed: number,
    readonly flip: boolean,
  ) {
    if (data.count === 0) throw new Error(`the training data ${data.name} has no images`);
    this.order = new EpochOrder(data.count, seed);
  }

  private indexAt(position: number): number {
    return this.order.indexAt(position);
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
