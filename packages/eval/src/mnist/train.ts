/**
 * Training of the MNIST classifier (used by scripts/train-mnist-classifier.mjs): Adam on softmax
 * cross-entropy, seeded initialisation and shuffling, no augmentation.
 */
import { initBackend, tf } from '@causalfusion/backend';
import { createRng } from '@causalfusion/rng';
import { forward, IMAGE_SIZE, initWeights, NUM_CLASSES, toInput, WEIGHT_SHAPES, type Weights } from './model';

/** Images and labels as `@causalfusion/data` returns them (only these fields are read). */
export interface LabelledImages {
  images: Uint8Array;
  labels: Uint8Array;
  count: number;
}

export interface TrainProgress {
  epoch: number;
  step: number;
  stepsPerEpoch: number;
  /** Mean cross-entropy over the steps since the last report. */
  loss: number;
  /** Training accuracy over the same steps. */
  accuracy: number;
  elapsedSeconds: number;
}

export interface TrainOptions {
  epochs?: number;
  batchSize?: number;
  learningRate?: number;
  seed?: number;
  /** Called every `reportEvery` steps and at the end of each epoch. */
  onProgress?: (p: TrainProgress) => void;
  reportEvery?: number;
  /** Stop after this many steps in total (for quick checks); default: all epochs. */
  maxSteps?: number;
}

const PIXELS = IMAGE_SIZE * IMAGE_SIZE;

function checkImages(d: LabelledImages, what: string): void {
  if (!(d.images instanceof Uint8Array) || d.images.length !== d.count * PIXELS || d.labels.length !== d.count) {
    throw new Error(`${what}: expected count*28*28 uint8 pixels and count labels (count=${d.count}).`);
  }
}

/** Trains from scratch and returns the weights as float32 arrays keyed as in WEIGHT_SHAPES. */
export async function trainMnistClassifier(train: LabelledImages, options: TrainOptions = {}): Promise<Record<string, Float32Array>> {
  checkImages(train, 'training data');
  await initBackend();
  const { epochs = 3, batchSize = 128, learningRate = 1e-3, seed = 0, reportEvery = 50 } = options;
  const maxSteps = options.maxSteps ?? Infinity;
  const rng = createRng(seed);
  const initial = initWeights(rng.fork(1));
  const variables: Weights = {};
  for (const [name, shape] of Object.entries(WEIGHT_SHAPES)) variables[name] = tf.variable(tf.tensor(initial[name], [...shape]), true, name);
  const optimizer = tf.train.adam(learningRate);
  const shuffle = rng.fork(2);
  const stepsPerEpoch = Math.ceil(train.count / batchSize);
  const start = Date.now();
  let step = 0;

  for (let epoch = 0; epoch < epochs && step < maxSteps; epoch++) {
    const order = shuffle.permutation(train.count);
    let lossSum = 0;
    let correct = 0;
    let seen = 0;
    for (let b = 0; b < stepsPerEpoch && step < maxSteps; b++, step++) {
      const idx = order.subarray(b * batchSize, Math.min(train.count, (b + 1) * batchSize));
      const n = idx.length;
      const pixels = new Uint8Array(n * PIXELS);
      const labels = new Int32Array(n);
      for (let i = 0; i < n; i++) {
        pixels.set(train.images.subarray(idx[i] * PIXELS, (idx[i] + 1) * PIXELS), i * PIXELS);
        labels[i] = train.labels[idx[i]];
      }
      const x = toInput(pixels, n);
      const y = tf.oneHot(tf.tensor1d(labels, 'int32'), NUM_CLASSES);
      // The predictions of this step, kept out of minimize's tidy to count training accuracy.
      const kept: { predicted?: tf.Tensor } = {};
      const loss = optimizer.minimize(
        () => {
          const { logits } = forward(variables, x, true);
          kept.predicted = tf.keep(tf.argMax(logits, 1));
          return tf.losses.softmaxCrossEntropy(y, logits) as tf.Scalar;
        },
        true,
        Object.values(variables) as tf.Variable[],
      );
      lossSum += (await loss!.data())[0] * n;
      const pred = await kept.predicted!.data();
      for (let i = 0; i < n; i++) if (pred[i] === labels[i]) correct++;
      seen += n;
      tf.dispose([x, y, loss!, kept.predicted!]);
      const last = b === stepsPerEpoch - 1 || step + 1 >= maxSteps;
      if (options.onProgress && ((b + 1) % reportEvery === 0 || last)) {
        options.onProgress({
          epoch: epoch + 1,
          step: b + 1,
          stepsPerEpoch,
          loss: lossSum / seen,
          accuracy: correct / seen,
          elapsedSeconds: (Date.now() - start) / 1000,
        });
        lossSum = 0;
        correct = 0;
        seen = 0;
      }
    }
  }

  const out: Record<string, Float32Array> = {};
  for (const [name, v] of Object.entries(variables)) out[name] = (await v.data()) as Float32Array;
  tf.dispose(Object.values(variables));
  optimizer.dispose();
  return out;
}
