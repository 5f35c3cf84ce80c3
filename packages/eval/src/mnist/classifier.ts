/**
 * The shipped MNIST classifier: loading its weights (safetensors + config.json), classifying digits,
 * and the 128-d penultimate features that FID-MNIST compares.
 */
import * as fs from 'fs';
import * as path from 'path';
import { initBackend, tf } from '@causalfusion/backend';
import { FEATURE_DIM, forward, IMAGE_SIZE, NUM_CLASSES, WEIGHT_SHAPES, type Weights } from './model';
import { readSafetensors, writeFileAtomic, writeSafetensors } from '@causalfusion/safetensors';

/** The command that (re)creates the shipped weights; quoted in every error about them. */
export const TRAIN_MNIST_CLASSIFIER_COMMAND = 'pnpm --filter @causalfusion/eval train:mnist-classifier';

/** Where the shipped weights live: `<package>/assets/mnist-classifier` (from both src/ and dist/). */
export const DEFAULT_MNIST_CLASSIFIER_DIR = path.resolve(__dirname, '..', '..', 'assets', 'mnist-classifier');

export const WEIGHTS_FILE = 'weights.safetensors';
export const CONFIG_FILE = 'config.json';

/** config.json: what the weights are and how they were made. */
export interface MnistClassifierConfig {
  format: 'causalfusion-mnist-classifier';
  architecture: string[];
  weightLayout: string;
  input: { height: number; width: number; channels: number; scaling: string };
  featureLayer: string;
  featureDim: number;
  numClasses: number;
  classNames: string[];
  testAccuracy: number;
  testSet: string;
  training: {
    command: string;
    dataset: string;
    epochs: number;
    batchSize: number;
    optimizer: string;
    seed: number;
    backend: string;
    wallTimeSeconds: number;
    date: string;
  };
}

export interface MnistPredictions {
  /** N predicted classes. */
  labels: Uint8Array;
  /** N*10 softmax probabilities, row i = image i. */
  probs: Float32Array;
}

export interface MnistFeatures {
  /** N*128 penultimate activations (fc1 after ReLU). */
  features: Float32Array;
  /** N*10 logits. */
  logits: Float32Array;
}

export interface MnistClassifier {
  readonly config: MnistClassifierConfig;
  /** Classifies N uint8 gray images (N*28*28 bytes, 0 = black background, as MNIST). */
  classify(images: Uint8Array): Promise<MnistPredictions>;
  /** Penultimate features and logits of N uint8 gray images (N*28*28 bytes). */
  features(images: Uint8Array): Promise<MnistFeatures>;
  /** Same, for inputs already scaled to [0, 1] (N*28*28 floats). */
  featuresFromScaled(inputs: Float32Array): Promise<MnistFeatures>;
  /** Frees the weight tensors. */
  dispose(): void;
}

const PIXELS = IMAGE_SIZE * IMAGE_SIZE;
/** Images per forward pass: bounds memory, large enough to keep the backend busy. */
const BATCH = 500;

function countOf(length: number, what: string): number {
  if (length === 0 || length % PIXELS !== 0) {
    throw new Error(`${what}: expected N*28*28 = N*${PIXELS} values, got ${length}; pass 28x28 grayscale images, row-major, one after another.`);
  }
  return length / PIXELS;
}

function missing(file: string): Error {
  return new Error(`MNIST classifier file not found: ${file}. Create the weights with: ${TRAIN_MNIST_CLASSIFIER_COMMAND}`);
}

/**
 * Loads the classifier from `dir` (default: the weights shipped in this package). Throws an Error that
 * names the bad file and the command that rebuilds it when a file is missing, corrupt or the wrong shape.
 */
export async function loadMnistClassifier(dir: string = DEFAULT_MNIST_CLASSIFIER_DIR): Promise<MnistClassifier> {
  const configPath = path.join(dir, CONFIG_FILE);
  const weightsPath = path.join(dir, WEIGHTS_FILE);
  if (!fs.existsSync(configPath)) throw missing(configPath);
  if (!fs.existsSync(weightsPath)) throw missing(weightsPath);
  const fix = `Re-create it with: ${TRAIN_MNIST_CLASSIFIER_COMMAND}`;

  let config: MnistClassifierConfig;
  try {
    config = JSON.parse(fs.readFileSync(configPath, 'utf8')) as MnistClassifierConfig;
  } catch (err) {
    throw new Error(`${configPath} is not valid JSON (${(err as Error).message}). ${fix}`);
  }
  if (config.format !== 'causalfusion-mnist-classifier') {
    throw new Error(`${configPath} is not an MNIST classifier config (format ${JSON.stringify(config.format)}). ${fix}`);
  }

  let tensors;
  try {
    tensors = readSafetensors(weightsPath).tensors;
  } catch (err) {
    throw new Error(`${(err as Error).message} ${fix}`);
  }
  for (const [name, shape] of Object.entries(WEIGHT_SHAPES)) {
    const t = tensors.get(name);
    if (!t) throw new Error(`${weightsPath} lacks the tensor "${name}". ${fix}`);
    if (t.shape.join(',') !== shape.join(',')) {
      throw new Error(`${weightsPath}: tensor "${name}" has shape [${t.shape}], expected [${shape}]. ${fix}`);
    }
  }

  const arrays: Record<string, Float32Array> = {};
  for (const name of Object.keys(WEIGHT_SHAPES)) arrays[name] = tensors.get(name)!.data;
  return createMnistClassifier(arrays, config);
}

/** A classifier from weights already in memory (keyed and shaped as WEIGHT_SHAPES), e.g. right after training. */
export async function createMnistClassifier(arrays: Record<string, Float32Array>, config: MnistClassifierConfig): Promise<MnistClassifier> {
  await initBackend();
  const weights: Weights = {};
  for (const [name, shape] of Object.entries(WEIGHT_SHAPES)) {
    if (!arrays[name]) throw new Error(`createMnistClassifier: missing weight "${name}".`);
    weights[name] = tf.tensor(arrays[name], [...shape]);
  }

  const run = async (inputs: Float32Array): Promise<MnistFeatures> => {
    const n = countOf(inputs.length, 'featuresFromScaled');
    const features = new Float32Array(n * FEATURE_DIM);
    const logits = new Float32Array(n * NUM_CLASSES);
    for (let start = 0; start < n; start += BATCH) {
      const m = Math.min(BATCH, n - start);
      const out = tf.tidy(() => {
        const x = tf.tensor4d(inputs.subarray(start * PIXELS, (start + m) * PIXELS), [m, IMAGE_SIZE, IMAGE_SIZE, 1]);
        return forward(weights, x);
      });
      features.set(await out.features.data(), start * FEATURE_DIM);
      logits.set(await out.logits.data(), start * NUM_CLASSES);
      tf.dispose([out.features, out.logits]);
    }
    return { features, logits };
  };

  const features = (images: Uint8Array): Promise<MnistFeatures> => {
    countOf(images.length, 'images');
    const scaled = new Float32Array(images.length);
    for (let i = 0; i < images.length; i++) scaled[i] = images[i] / 255;
    return run(scaled);
  };

  return {
    config,
    features,
    featuresFromScaled: run,
    async classify(images: Uint8Array): Promise<MnistPredictions> {
      const { logits } = await features(images);
      const n = logits.length / NUM_CLASSES;
      const labels = new Uint8Array(n);
      const probs = new Float32Array(logits.length);
      for (let i = 0; i < n; i++) {
        // Softmax in float64, shifted by the row maximum for stability.
        const row = logits.subarray(i * NUM_CLASSES, (i + 1) * NUM_CLASSES);
        let best = 0;
        for (let c = 1; c < NUM_CLASSES; c++) if (row[c] > row[best]) best = c;
        let sum = 0;
        for (let c = 0; c < NUM_CLASSES; c++) sum += Math.exp(row[c] - row[best]);
        for (let c = 0; c < NUM_CLASSES; c++) probs[i * NUM_CLASSES + c] = Math.exp(row[c] - row[best]) / sum;
        labels[i] = best;
      }
      return { labels, probs };
    },
    dispose() {
      tf.dispose(Object.values(weights));
    },
  };
}

/** Writes `weights.safetensors` and `config.json` into `dir` (created if needed). */
export function saveMnistClassifier(dir: string, weights: Record<string, Float32Array>, config: MnistClassifierConfig): void {
  const tensors: Record<string, { shape: number[]; data: Float32Array }> = {};
  for (const [name, shape] of Object.entries(WEIGHT_SHAPES)) {
    if (!weights[name]) throw new Error(`saveMnistClassifier: missing weight "${name}".`);
    tensors[name] = { shape: [...shape], data: weights[name] };
  }
  writeSafetensors(path.join(dir, WEIGHTS_FILE), tensors, { format: 'causalfusion-mnist-classifier' });
  writeFileAtomic(path.join(dir, CONFIG_FILE), JSON.stringify(config, null, 2) + '\n');
}
