import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { initBackend, tf } from '@causalfusion/backend';
import { loadFashionMnist, loadMnist, type ImageDataset } from '@causalfusion/data';
import { createRng } from '@causalfusion/rng';
import { serializeSafetensors } from '@causalfusion/safetensors';
import { frechetDistance } from '../fid/frechet';
import { InceptionScoreAccumulator } from '../fid/inception-score';
import { statisticsOf } from '../fid/statistics';
import type { RgbImage } from '../fid/extractor';
import { createMnistFeatureExtractor, DEFAULT_MNIST_CLASSIFIER_DIR, loadMnistClassifier, TRAIN_MNIST_CLASSIFIER_COMMAND, type MnistClassifier } from './index';
import { forward, initWeights, toInput, WEIGHT_SHAPES, type Weights } from './model';

jest.setTimeout(60_000);

const PIXELS = 28 * 28;
let classifier: MnistClassifier;
let mnistTest: ImageDataset;

beforeAll(async () => {
  classifier = await loadMnistClassifier();
  mnistTest = loadMnist('test');
});
afterAll(() => classifier?.dispose());

/** Images [from, to) of a dataset as RgbImage objects (gray replicated into R, G, B). */
function asRgb(d: ImageDataset, from: number, to: number): RgbImage[] {
  const out: RgbImage[] = [];
  for (let i = from; i < to; i++) {
    const gray = d.images.subarray(i * PIXELS, (i + 1) * PIXELS);
    const data = new Uint8Array(PIXELS * 3);
    for (let p = 0; p < PIXELS; p++) data[3 * p] = data[3 * p + 1] = data[3 * p + 2] = gray[p];
    out.push({ width: 28, height: 28, data });
  }
  return out;
}

describe('the shipped MNIST classifier', () => {
  it('records how it was made in config.json', () => {
    const c = classifier.config;
    expect(c.testAccuracy).toBeGreaterThan(0.98);
    expect(c.training.command.startsWith(TRAIN_MNIST_CLASSIFIER_COMMAND)).toBe(true);
    expect(c.featureDim).toBe(128);
    // The weights stay small enough to ship in the npm package.
    expect(fs.statSync(path.join(DEFAULT_MNIST_CLASSIFIER_DIR, 'weights.safetensors')).size).toBeLessThan(2_000_000);
  });

  it('classifies the first 2000 MNIST test images with accuracy above 98%', async () => {
    const n = 2000;
    const { labels, probs } = await classifier.classify(mnistTest.images.subarray(0, n * PIXELS));
    let correct = 0;
    for (let i = 0; i < n; i++) if (labels[i] === mnistTest.labels[i]) correct++;
    expect(correct / n).toBeGreaterThan(0.98);
    expect(probs.length).toBe(n * 10);
    const rowSum = probs.subarray(0, 10).reduce((a, b) => a + b, 0);
    expect(rowSum).toBeCloseTo(1, 5);
    expect(probs[labels[0]]).toBe(Math.max(...probs.subarray(0, 10)));
  });

  it('rejects input that is not N*28*28 bytes, saying what it expects', async () => {
    await expect(classifier.classify(new Uint8Array(100))).rejects.toThrow(/expected N\*28\*28 = N\*784 values, got 100/);
  });
});

describe('FID-MNIST feature extractor', () => {
  it('returns 128-d features and 10 logits; RGB, gray and 2x-upscaled inputs give the same features', async () => {
    const extractor = await createMnistFeatureExtractor({ classifier });
    expect(extractor.dim).toBe(128);
    const rgb = asRgb(mnistTest, 0, 8);
    const batch = await extractor.extract(rgb);
    expect(batch.features.length).toBe(8 * 128);
    expect(batch.numClasses).toBe(10);
    expect(batch.logits!.length).toBe(8 * 10);
    // Same as the classifier's own features of the gray bytes.
    const direct = await classifier.features(mnistTest.images.subarray(0, 8 * PIXELS));
    expect(Array.from(batch.features)).toEqual(Array.from(direct.features));

    // 1-channel data is accepted as gray.
    const gray = rgb.map((im) => ({ width: 28, height: 28, data: im.data.filter((_, i) => i % 3 === 0) }));
    expect(Array.from((await extractor.extract(gray)).features)).toEqual(Array.from(direct.features));

    // A 56x56 nearest-neighbour upscale comes back to the original exactly under half-pixel bilinear.
    const big = rgb.map((im) => {
      const data = new Uint8Array(56 * 56 * 3);
      for (let y = 0; y < 56; y++)
        for (let x = 0; x < 56; x++) for (let c = 0; c < 3; c++) data[(y * 56 + x) * 3 + c] = im.data[((y >> 1) * 28 + (x >> 1)) * 3 + c];
      return { width: 56, height: 56, data };
    });
    const resized = await extractor.extract(big);
    for (let i = 0; i < direct.features.length; i++) expect(resized.features[i]).toBeCloseTo(direct.features[i], 4);

    await expect(extractor.extract([{ width: 28, height: 28, data: new Uint8Array(10) }])).rejects.toThrow(
      /Image 0: 28x28 needs 2352 bytes \(RGB\) or 784 \(gray\), got 10/,
    );
    await extractor.dispose?.();
  });

  it('FID-MNIST between two halves of MNIST test is small, and large against Fashion-MNIST', async () => {
    const n = 2000;
    const extractor = await createMnistFeatureExtractor({ classifier });
    const fashion = loadFashionMnist('test'); // interleaved by class: any prefix is balanced
    // Even and odd images of the first 2n: the same writers and digit mix in both halves.
    const both = await extractor.extract(asRgb(mnistTest, 0, 2 * n));
    const half = (parity: number) => {
      const features = new Float32Array(n * 128);
      const logits = new Float32Array(n * 10);
      for (let i = 0; i < n; i++) {
        features.set(both.features.subarray((2 * i + parity) * 128, (2 * i + parity + 1) * 128), i * 128);
        logits.set(both.logits!.subarray((2 * i + parity) * 10, (2 * i + parity + 1) * 10), i * 10);
      }
      return { features, logits };
    };
    const a = half(0);
    const b = half(1);
    const f = await extractor.extract(asRgb(fashion, 0, n));
    const [sa, sb, sf] = await Promise.all([a, b, f].map((x) => statisticsOf(x.features, 128, { backend: 'js' })));
    const same = (await frechetDistance(sa, sb, { backend: 'js' })).distance;
    const other = (await frechetDistance(sa, sf, { backend: 'js' })).distance;
    // Measured with the shipped weights (README, FID-MNIST): 1.87 and 264 at n = 2000.
    expect(same).toBeGreaterThan(0);
    expect(same).toBeLessThan(5);
    expect(other).toBeGreaterThan(50 * same);

    // Inception Score from the same network's logits: near 10 for class-balanced, confidently classified
    // digits; 1 for a single image (no diversity).
    const inceptionScore = (logits: Float32Array | Float64Array) => {
      const acc = new InceptionScoreAccumulator(10, logits.length / 10);
      acc.add(logits);
      return acc.score();
    };
    const is = inceptionScore(a.logits);
    expect(is).toBeGreaterThan(9);
    expect(inceptionScore(a.logits.subarray(0, 10))).toBeCloseTo(1, 6);
    console.log(`FID-MNIST (n=${n}): MNIST test halves ${same.toFixed(3)}, MNIST vs Fashion-MNIST ${other.toFixed(1)}; IS ${is.toFixed(3)}`);
  });
});

describe('loading errors name the file and the fix', () => {
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'cf-mnist-'));
  afterAll(() => fs.rmSync(scratch, { recursive: true, force: true }));
  const copyShipped = (dir: string) => {
    fs.mkdirSync(dir, { recursive: true });
    for (const f of ['config.json', 'weights.safetensors']) fs.copyFileSync(path.join(DEFAULT_MNIST_CLASSIFIER_DIR, f), path.join(dir, f));
  };

  it('a missing folder or file', async () => {
    const dir = path.join(scratch, 'nothing-here');
    await expect(loadMnistClassifier(dir)).rejects.toThrow(`MNIST classifier file not found: ${path.join(dir, 'config.json')}`);
    await expect(loadMnistClassifier(dir)).rejects.toThrow(TRAIN_MNIST_CLASSIFIER_COMMAND);
    copyShipped(dir);
    fs.rmSync(path.join(dir, 'weights.safetensors'));
    await expect(loadMnistClassifier(dir)).rejects.toThrow(path.join(dir, 'weights.safetensors'));
  });

  it('a truncated weights file, a wrong tensor shape and a broken config', async () => {
    const dir = path.join(scratch, 'corrupt');
    copyShipped(dir);
    const file = path.join(dir, 'weights.safetensors');
    const bytes = fs.readFileSync(file);
    fs.writeFileSync(file, bytes.subarray(0, bytes.length - 1000));
    await expect(loadMnistClassifier(dir)).rejects.toThrow(
      new RegExp(
        `${file.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')} is not a valid safetensors file: .*Re-create it with: pnpm --filter @causalfusion/eval train:mnist-classifier`,
      ),
    );

    const wrong = serializeSafetensors({ 'conv1.kernel': { shape: [3, 3, 1, 16], data: new Float32Array(144) } });
    fs.writeFileSync(file, wrong);
    await expect(loadMnistClassifier(dir)).rejects.toThrow(/tensor "conv1.kernel" has shape \[3,3,1,16\], expected \[3,3,1,32\]/);

    fs.writeFileSync(path.join(dir, 'config.json'), '{ not json');
    await expect(loadMnistClassifier(dir)).rejects.toThrow(/config\.json is not valid JSON/);
  });
});

describe('training gradients', () => {
  it('the hand-written gradients of the training path equal tfjs autodiff of the inference path', async () => {
    // The stock gradients need Conv2DBackpropFilter, which the wasm backend lacks: compare on cpu.
    // Noise images, not digits: their window maxima are unique, where the two max-pool rules agree.
    await initBackend({ backend: 'cpu', quiet: true });
    try {
      const rng = createRng(3);
      const init = initWeights(rng);
      const weights: Weights = {};
      for (const [name, shape] of Object.entries(WEIGHT_SHAPES)) weights[name] = tf.variable(tf.tensor(init[name], [...shape]), true, name);
      const x = toInput(
        Uint8Array.from(rng.uniformArray(PIXELS), (u) => Math.floor(256 * u)),
        1,
      );
      const y = tf.oneHot(tf.tensor1d([3], 'int32'), 10);
      const grads = (training: boolean) => tf.variableGrads(() => tf.losses.softmaxCrossEntropy(y, forward(weights, x, training).logits) as tf.Scalar).grads;
      const custom = grads(true);
      const stock = grads(false);
      for (const name of Object.keys(WEIGHT_SHAPES)) {
        const c = custom[name].dataSync();
        const s = stock[name].dataSync();
        let scale = 0;
        let worst = 0;
        for (let i = 0; i < s.length; i++) {
          scale = Math.max(scale, Math.abs(s[i]));
          worst = Math.max(worst, Math.abs(c[i] - s[i]));
        }
        expect(scale).toBeGreaterThan(0);
        expect(worst).toBeLessThan(1e-5 * scale);
      }
      tf.dispose([x, y, ...Object.values(weights), ...Object.values(custom), ...Object.values(stock)]);
    } finally {
      await initBackend({ backend: 'wasm', quiet: true });
    }
  });
});
