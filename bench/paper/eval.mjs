// The evaluation of `pnpm bench:paper`: a classifier-feature FID per (model, S_eval) cell.
//
//   1. N samples of a class-conditional MNIST model on onnxruntime (OrtDenoiser, rows over two single-threaded
//      engines), N/10 per digit, S_eval AR steps of equal size in random order, `steps` respaced DDPM steps,
//      CFG `cfg`, x0 clamped to [-1, 1] (the CLI's settings for pixel models);
//   2. the shipped MNIST classifier's 128 penultimate features (@causalfusion/eval; 98.87% test accuracy) of
//      the samples enlarged to 28x28, against the same features of the 10,000 MNIST test digits taken through
//      the same round trip (shrunk to the model's size, then enlarged to 28x28 the same way);
//   3. the Frechet distance of the two Gaussians.
// Small-sample FID is biased upward, so `floor()` gives the real-vs-real value at the same N (MNIST training
// digits through the same round trip against the same test statistics): what a perfect model scores here.
import { createRequire } from 'node:module';
import { join } from 'node:path';

const root = new URL('../..', import.meta.url).pathname;
const require = createRequire(join(root, 'apps/cli/package.json'));
const { loadMnist, PixelTokenizer, resizeImages } = require('@causalfusion/data');
const { createDiffusion } = require('@causalfusion/diffusion');
const { FeatureStatistics, frechetDistance, loadMnistClassifier } = require('@causalfusion/eval');
const { sample } = require('@causalfusion/sampler');

let classifier = null;
const realStatsCache = new Map();

async function getClassifier() {
  classifier ??= await loadMnistClassifier();
  return classifier;
}

/** Gaussian statistics of the classifier's penultimate features of uint8 images of `size` x `size` (enlarged to 28x28). */
async function featureStats(images, size) {
  const c = await getClassifier();
  const stats = new FeatureStatistics(128);
  const per = size * size;
  const count = images.length / per;
  for (let from = 0; from < count; from += 1000) {
    const part = images.subarray(from * per, Math.min(count, from + 1000) * per);
    const { features } = await c.features(size === 28 ? part : resizeImages(part, size, 28));
    await stats.add(features);
  }
  return stats.toStats();
}

/** MNIST digits of a split at the model's size (n from the start of the split; all when n is undefined). */
function digits(split, size, n) {
  const data = loadMnist(split);
  const count = Math.min(n ?? data.count, data.count);
  const images = data.images.subarray(0, count * 784);
  return size === 28 ? images : resizeImages(images, 28, size);
}

/** The statistics of the 10,000 MNIST test digits through the model-size round trip. */
export async function realStats(size) {
  if (!realStatsCache.has(size)) realStatsCache.set(size, await featureStats(digits('test', size), size));
  return realStatsCache.get(size);
}

/** Real-vs-real FID at `n` samples: the first n MNIST training digits against the test statistics. */
export async function floor(size, n) {
  return (await frechetDistance(await featureStats(digits('train', size, n), size), await realStats(size))).distance;
}

/** The model folder's pixel tokenizer (meta.json). */
export function tokenizerOf(meta) {
  const t = meta.tokenizer;
  if (!t || t.kind !== 'pixel') throw new Error('bench:paper evaluates pixel models');
  return new PixelTokenizer({ imageSize: t.imageSize, channels: t.channels, patchSize: t.patchSize });
}

/**
 * One FID cell: `num` samples of the model folder `dir` at `arSteps` AR steps. Returns
 * { fid, n, seconds, imagesPerSecond }. `log` hears progress lines.
 */
export async function fidCell(dir, meta, { arSteps, num, steps, cfg, seed, batch = 250, threads = 2, log = () => {} }) {
  const { OrtDenoiser } = require('@causalfusion/onnx');
  if (meta.dataset !== 'mnist') throw new Error(`the FID cells read digits with the MNIST classifier; ${dir} is a ${meta.dataset} model`);
  const tokenizer = tokenizerOf(meta);
  const denoiser = await OrtDenoiser.load(dir, { threads });
  const diffusion = createDiffusion({ steps: 1000, schedule: 'linear', respacing: String(steps) });
  const started = Date.now();
  const images = new Uint8Array(num * tokenizer.pixelsPerImage);
  try {
    const conditions = Array.from({ length: num }, (_, i) => i % 10);
    for (let from = 0; from < num; from += batch) {
      const { tokens } = await sample(denoiser, {
        grid: [tokenizer.grid, tokenizer.grid],
        diffusion,
        method: 'ddpm',
        cfgScale: cfg,
        seed: seed * 1_000_003 + from,
        clipDenoised: true,
        conditions: conditions.slice(from, from + batch),
        arSteps,
      });
      images.set(tokenizer.decode(tokens), from * tokenizer.pixelsPerImage);
      log(`S_eval=${arSteps}: ${Math.min(from + batch, num)}/${num} samples, ${((Date.now() - started) / 1000).toFixed(0)}s`);
    }
  } finally {
    await denoiser.release();
  }
  const sampleSeconds = (Date.now() - started) / 1000;
  const fid = (await frechetDistance(await featureStats(images, tokenizer.imageSize), await realStats(tokenizer.imageSize))).distance;
  return { fid, n: num, seconds: (Date.now() - started) / 1000, imagesPerSecond: num / sampleSeconds };
}
