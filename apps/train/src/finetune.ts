/**
 * `causalfusion finetune --task classify`: a trained generative model's transformer as an image
 * classifier (the paper's Table 6b). Clean image tokens go in (no noise, no timestep) after the null
 * class's condition tokens, under full attention; a head (LayerNorm + Linear) reads the mean of the final
 * image tokens. `--probe` trains the head only (a linear probe on frozen features), otherwise every
 * parameter (end to end). `--scratch` starts the same network from fresh weights (the baseline).
 *
 * The loop is the generative trainer's (./loop: progress, log.csv, loss.png, checkpoints every N steps,
 * Ctrl-C saves and stops), the update is its (./update: clip, AdamW at the warmed-up rate, EMA), the
 * gradients come from one onnxruntime graph (@causalfusion/onnx's classify graph). Batch k is a pure
 * function of (seed, k) and nothing else is random, so --resume continues exactly. `--labels N` trains on
 * N labeled images (balanced over the classes, seeded); the accuracy on the dataset's test split (a
 * folder: --test-data, or the training images not among the N) is logged every --eval-every steps on the
 * first --eval-count test images, and on all of them at the end (eval.csv).
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import {
  FASHION_MNIST_CLASS_NAMES,
  loadFashionMnist,
  loadImageFolder,
  loadMnist,
  MNIST_CLASS_NAMES,
  pixelTokenizer,
  resizeImages,
  type PixelTokenizer,
} from '@causalfusion/data';
import {
  classifyEntries,
  initialHead,
  OrtClassifySession,
  pixelTokenizerOf,
  predictions,
  readMeta,
  readModelFolder,
  writeClassifierFolder,
  type ClassifyEntry,
  type PixelTokenizerMeta,
} from '@causalfusion/onnx';
import { createRng } from '@causalfusion/rng';
import { makeDirs, readSafetensors, writeFileAtomic, writeSafetensors } from '@causalfusion/safetensors';
import {
  configFromJson,
  configToJson,
  HostAdamW,
  initialWeights,
  officialStateDict,
  toTrainingLayout,
  trainingEntries,
  type ModelConfig,
} from '@causalfusion/config';
import { FINETUNE_CHECKPOINT_FORMAT, findCheckpoint, optimizerTensors, writeCheckpointFolder } from './checkpoint';
import { checkClipAndDecay, checkLearningRates, FlagKind, flagOf, OPTIMIZER_FLAGS, parseFlags, resumedConfig } from './flags';
import { runTrainingLoop, upToDateMessage, type LoopResult } from './loop';
import { readCsv, writeCsv, type LogRow } from './report';
import { applyUpdate, checkLoss } from './update';

export { FINETUNE_CHECKPOINT_FORMAT };

export interface FinetuneConfig {
  task: 'classify';
  /** The generative model folder fine-tuned (absolute): its weights (unless scratch), config and tokenizer. */
  model: string;
  /** Start the same network from fresh weights instead (the from-scratch baseline). */
  scratch: boolean;
  /** `mnist`, `fashion-mnist` or a folder with one sub-folder per class. */
  data: string;
  /** A folder's test images (same classes); empty: the folder's images not among the labeled ones. */
  testData: string;
  /** Labeled training images (balanced over the classes, seeded); 0 = the whole training split. */
  labels: number;
  /** Train the head only (a linear probe); otherwise every parameter. */
  probe: boolean;
  batchSize: number;
  steps: number;
  lr: number;
  warmupSteps: number;
  beta1: number;
  beta2: number;
  weightDecay: number;
  clipNorm: number;
  /** EMA of the weights (0 = off: the EMA is the model); the EMA is what is evaluated and exported. */
  emaDecay: number;
  emaWarmup: boolean;
  seed: number;
  threads: number;
  out: string;
  checkpointEvery: number;
  logEvery: number;
  /** Test accuracy every N steps on the first evalCount test images (and on all at the end). */
  evalEvery: number;
  evalCount: number;
}

const FT_BASE: Omit<FinetuneConfig, 'out' | 'model'> = {
  task: 'classify',
  scratch: false,
  data: 'fashion-mnist',
  testData: '',
  labels: 0,
  probe: false,
  batchSize: 64,
  steps: 2000,
  lr: 1e-4,
  warmupSteps: 100,
  beta1: 0.9,
  beta2: 0.999,
  weightDecay: 0.05,
  clipNorm: 1,
  emaDecay: 0,
  emaWarmup: true,
  seed: 0,
  threads: Math.max(1, os.availableParallelism()),
  checkpointEvery: 500,
  logEvery: 50,
  evalEvery: 500,
  evalCount: 2000,
};

/** The learning rate of a linear probe when --lr is not given (a head alone takes a larger step). */
export const PROBE_LR = 1e-2;

/** What --resume may change. */
export const FT_RESUMABLE: readonly (keyof FinetuneConfig)[] = ['steps', 'threads', 'out', 'checkpointEvery', 'logEvery', 'evalEvery', 'evalCount'];

export const FT_FLAGS: Record<string, [keyof FinetuneConfig, FlagKind]> = {
  model: ['model', 'string'],
  scratch: ['scratch', 'bool'],
  data: ['data', 'string'],
  'test-data': ['testData', 'string'],
  labels: ['labels', 'int'],
  probe: ['probe', 'bool'],
  ...OPTIMIZER_FLAGS,
  seed: ['seed', 'int'],
  threads: ['threads', 'int'],
  out: ['out', 'string'],
  'checkpoint-every': ['checkpointEvery', 'int'],
  'log-every': ['logEvery', 'int'],
  'eval-every': ['evalEvery', 'int'],
  'eval-count': ['evalCount', 'int'],
};

export const FINETUNE_USAGE = `usage: causalfusion finetune --task classify --model DIR --data mnist|fashion-mnist|FOLDER --out DIR [options]

Fine-tunes a trained generative model's transformer as an image classifier (the paper's Table 6b): clean
image tokens in (no noise, no timestep), the null class as the condition, full attention, a LayerNorm +
Linear head on the mean of the final image tokens. On onnxruntime.

  --model DIR            the generative model folder (causalfusion train --export; pixel models)
  --data NAME            mnist, fashion-mnist or a folder with one sub-folder per class (PNG/JPEG)
  --labels N             train on N labeled images, balanced over the classes and seeded (default: all)
  --probe                a linear probe: train the head only, the transformer frozen (default: end to end)
  --scratch              the same network from fresh weights (the from-scratch baseline)
  --out DIR              run folder: checkpoint/, log.csv, loss.png, eval.csv
  --resume               continue the run in --out from its checkpoint (exactly; --steps may be raised)
  --export DIR           at the end, write the classifier folder that causalfusion classify loads
  --test-data FOLDER     a folder's test images (default: its images not among the --labels ones)
  --steps N (2000) --batch N (64) --lr X (1e-4; --probe: 1e-2) --warmup N (100) --weight-decay X (0.05)
  --beta1 X (0.9) --beta2 X (0.999) --clip X (1) --ema-decay X (0: off) --seed N (0) --threads N (the cores)
  --eval-every N (500) --eval-count N (2000): test accuracy on the first N test images every N steps
  --checkpoint-every N (500) --log-every N (50)`;

export interface FinetuneCommand {
  config: FinetuneConfig;
  resume: boolean;
  exportDir: string | null;
  help: boolean;
  explicit: Partial<FinetuneConfig>;
  sources?: Partial<Record<keyof FinetuneConfig, string>>;
}

export function validateFinetuneConfig(c: FinetuneConfig): void {
  const f = (k: keyof FinetuneConfig) => flagOf(FT_FLAGS, k);
  for (const k of ['batchSize', 'steps', 'threads', 'checkpointEvery', 'logEvery', 'evalEvery', 'evalCount'] as const) {
    const v = c[k];
    if (!Number.isInteger(v) || v < 1) throw new Error(`${f(k)} must be a positive integer, got ${String(v)}`);
  }
  if (c.batchSize > 4096) throw new Error(`--batch ${c.batchSize} is over the maximum of 4096`);
  if (!Number.isInteger(c.labels) || c.labels < 0) throw new Error(`--labels must be an integer >= 0 (0: every training image), got ${String(c.labels)}`);
  if (!c.out) throw new Error('give the run folder with --out <dir> (e.g. --out runs/fashion-probe)');
  if (!c.model) throw new Error('give the generative model with --model <dir> (a folder written by causalfusion train --export)');
  checkLearningRates(c, ['beta1', 'beta2', 'emaDecay'], f);
  checkClipAndDecay(c);
  if (!Number.isSafeInteger(c.seed) || c.seed < 0) throw new Error(`--seed must be an integer >= 0, got ${c.seed}`);
  if (c.task !== 'classify') throw new Error(`--task must be classify, got "${String(c.task)}"`);
  if (c.data !== 'mnist' && c.data !== 'fashion-mnist' && !fs.existsSync(c.data)) {
    throw new Error(`--data ${c.data}: not mnist, fashion-mnist or an existing folder with one sub-folder per class`);
  }
  if (c.testData && !fs.existsSync(c.testData)) throw new Error(`--test-data ${c.testData} does not exist`);
  if (c.testData && (c.data === 'mnist' || c.data === 'fashion-mnist')) throw new Error(`--test-data is for image folders; ${c.data} has its own test split`);
}

/** Parse `causalfusion finetune` flags. */
export function parseFinetuneArgs(argv: string[]): FinetuneCommand {
  const { values, overrides } = parseFlags(
    argv,
    FT_FLAGS,
    { task: 'string', resume: 'boolean', export: 'string', help: 'boolean' },
    'causalfusion finetune --help',
  );
  const help = Boolean(values.help);
  const task = (values.task as string | undefined) ?? 'classify';
  if (task !== 'classify') throw new Error(`--task must be classify (the one fine-tuning task so far), got "${task}"`);
  const resume = Boolean(values.resume);
  if (overrides.model !== undefined) overrides.model = path.resolve(overrides.model as string);
  if (overrides.testData !== undefined) overrides.testData = path.resolve(overrides.testData as string);
  const probe = Boolean(overrides.probe);
  const config = { ...FT_BASE, lr: probe ? PROBE_LR : FT_BASE.lr, model: '', ...overrides, out: (overrides.out as string | undefined) ?? '' } as FinetuneConfig;
  // with --resume the run's saved config decides; without, the flags must make a complete config
  if (!help && !resume) validateFinetuneConfig(config);
  if (!help && resume && !config.out) throw new Error('give the run folder to continue with --out <dir>');
  const sources: Partial<Record<keyof FinetuneConfig, string>> = {};
  for (const key of Object.keys(overrides) as (keyof FinetuneConfig)[]) sources[key] = flagOf(FT_FLAGS, key);
  return {
    config,
    resume,
    exportDir: (values.export as string | undefined) ?? null,
    help,
    explicit: { ...(overrides as Partial<FinetuneConfig>), out: config.out },
    sources,
  };
}

// ------------------------------------------------------------------ data

export interface LabeledData {
  classNames: readonly string[];
  /** NHWC uint8 at the model's image size. */
  train: { images: Uint8Array; labels: Int32Array; count: number };
  test: { images: Uint8Array; labels: Int32Array; count: number; name: string };
}

/** The indices of a balanced labeled subset: n images, floor(n/K) per class (the first n mod K classes one more), seeded. */
export function balancedSubset(labels: ArrayLike<number>, numClasses: number, n: number, seed: number): Int32Array {
  if (n < numClasses) throw new Error(`--labels ${n}: fewer labeled images than the ${numClasses} classes; give at least one per class`);
  const byClass: number[][] = Array.from({ length: numClasses }, () => []);
  for (let i = 0; i < labels.length; i++) byClass[labels[i]].push(i);
  const rng = createRng(`${seed}:labels`);
  const picked: number[] = [];
  byClass.forEach((indices, c) => {
    const want = Math.floor(n / numClasses) + (c < n % numClasses ? 1 : 0);
    if (indices.length < want)
      throw new Error(`--labels ${n}: class ${c} has ${indices.length} training images, fewer than the ${want} a balanced subset needs`);
    const order = rng.permutation(indices.length);
    for (let j = 0; j < want; j++) picked.push(indices[order[j]]);
  });
  return Int32Array.from(picked.sort((a, b) => a - b));
}

function take(
  images: Uint8Array,
  labels: ArrayLike<number>,
  indices: ArrayLike<number>,
  per: number,
): { images: Uint8Array; labels: Int32Array; count: number } {
  const out = new Uint8Array(indices.length * per);
  const outLabels = new Int32Array(indices.length);
  for (let j = 0; j < indices.length; j++) {
    out.set(images.subarray(indices[j] * per, (indices[j] + 1) * per), j * per);
    outLabels[j] = labels[indices[j]];
  }
  return { images: out, labels: outLabels, count: indices.length };
}

/** The labeled training images and the test images, at the model's size. */
export async function loadLabeledData(c: FinetuneConfig, tokenizer: PixelTokenizerMeta): Promise<LabeledData> {
  const size = tokenizer.imageSize;
  const per = size * size * tokenizer.channels;
  if (c.data === 'mnist' || c.data === 'fashion-mnist') {
    if (tokenizer.channels !== 1) throw new Error(`${c.data} images are gray and the model works on ${tokenizer.channels} channels`);
    const load = c.data === 'mnist' ? loadMnist : loadFashionMnist;
    const [train, test] = [load('train'), load('test')];
    const resize = (images: Uint8Array) => (size === 28 ? images : resizeImages(images, 28, size));
    const K = 10;
    const indices = c.labels ? balancedSubset(train.labels, K, c.labels, c.seed) : Int32Array.from({ length: train.count }, (_, i) => i);
    const picked = take(train.images, train.labels, indices, 28 * 28);
    return {
      classNames: c.data === 'mnist' ? MNIST_CLASS_NAMES : FASHION_MNIST_CLASS_NAMES,
      train: { ...picked, images: resize(picked.images) },
      test: { images: resize(test.images), labels: Int32Array.from(test.labels), count: test.count, name: `${c.data} test split` },
    };
  }
  const folder = await loadImageFolder(c.data, { imageSize: size, channels: tokenizer.channels });
  const K = folder.classNames.length;
  if (K < 2) throw new Error(`--data ${c.data}: a classifier needs at least 2 class sub-folders, found ${K}`);
  const indices = c.labels ? balancedSubset(folder.labels, K, c.labels, c.seed) : Int32Array.from({ length: folder.count }, (_, i) => i);
  const train = take(folder.images, folder.labels, indices, per);
  if (c.testData) {
    const test = await loadImageFolder(c.testData, { imageSize: size, channels: tokenizer.channels });
    if (JSON.stringify(test.classNames) !== JSON.stringify(folder.classNames)) {
      throw new Error(
        `--test-data ${c.testData}: its classes (${test.classNames.join(', ')}) differ from the training folder's (${folder.classNames.join(', ')})`,
      );
    }
    return { classNames: folder.classNames, train, test: { images: test.images, labels: test.labels, count: test.count, name: c.testData } };
  }
  const chosen = new Set(indices);
  const rest = Int32Array.from({ length: folder.count }, (_, i) => i).filter((i) => !chosen.has(i));
  if (rest.length === 0) throw new Error(`--data ${c.data}: every image is a labeled training image; leave some out (--labels) or give --test-data`);
  return {
    classNames: folder.classNames,
    train,
    test: { ...take(folder.images, folder.labels, rest, per), name: `${c.data} (images not among the labeled ones)` },
  };
}

// ------------------------------------------------------------------ checkpoints

interface FinetuneState {
  format: typeof FINETUNE_CHECKPOINT_FORMAT;
  step: number;
  adamStepCount: number;
  config: FinetuneConfig;
  /** The generative model's config.json and tokenizer, so that a resumed run needs nothing else. */
  modelConfig: Record<string, number | boolean>;
  tokenizer: PixelTokenizerMeta;
  classNames: string[];
  wallSeconds: number;
  /** The generative model's meta.json `training` entry (provenance of the export). */
  source: unknown;
}

function readState(found: string): FinetuneState {
  const file = path.join(found, 'state.json');
  let s: FinetuneState;
  try {
    s = JSON.parse(fs.readFileSync(file, 'utf8')) as FinetuneState;
  } catch (e) {
    throw new Error(`${file} cannot be read as JSON (${(e as Error).message.split('\n')[0]}); the checkpoint is damaged`);
  }
  if (s === null || typeof s !== 'object' || s.format !== FINETUNE_CHECKPOINT_FORMAT) {
    throw new Error(
      `${found} is not a finetune checkpoint (state.json format ${JSON.stringify((s as { format?: unknown } | null)?.format)}); continue a causalfusion train run with causalfusion train --resume`,
    );
  }
  if (!Number.isSafeInteger(s.step) || s.step < 0 || !Number.isSafeInteger(s.adamStepCount) || !Array.isArray(s.classNames) || typeof s.config !== 'object') {
    throw new Error(`${file}: step, adamStepCount, classNames or config is missing or malformed; the checkpoint is damaged`);
  }
  return s;
}

function readArrays(file: string, entries: readonly ClassifyEntry[]): Float32Array[] {
  const tensors = readSafetensors(file).tensors;
  return entries.map((e) => {
    const t = tensors.get(e.key);
    if (!t || JSON.stringify(t.shape) !== JSON.stringify(e.officialShape))
      throw new Error(`${file}: ${e.key} is missing or has another shape; the checkpoint does not match the model`);
    return toTrainingLayout(e, t.data);
  });
}

// ------------------------------------------------------------------ the run

export interface FinetuneResult {
  config: FinetuneConfig;
  step: number;
  sessionSteps: number;
  loss: number;
  /** Accuracy on the whole test set at the end (NaN when the run stopped early or had nothing to do). */
  testAccuracy: number;
  testCount: number;
  stepsPerSec: number;
  wallSeconds: number;
  interrupted: boolean;
  signal?: 'SIGINT' | 'SIGTERM';
  upToDate?: boolean;
}

/** Accuracy of `params` on the first `count` test images, in batches. */
async function accuracy(
  session: OrtClassifySession,
  params: Float32Array[],
  tokenizer: PixelTokenizer,
  test: LabeledData['test'],
  count: number,
  batch = 500,
): Promise<number> {
  const per = tokenizer.pixelsPerImage;
  let right = 0;
  for (let from = 0; from < count; from += batch) {
    const to = Math.min(count, from + batch);
    const logits = await session.logits(params, tokenizer.encode(test.images.subarray(from * per, to * per)));
    const { labels } = predictions(logits, session.numLabels);
    for (let i = 0; i < labels.length; i++) if (labels[i] === test.labels[from + i]) right++;
  }
  return right / count;
}

export async function finetune(command: FinetuneCommand & { commandLine?: string; write?: (s: string) => void; tty?: boolean }): Promise<FinetuneResult> {
  const write = command.write ?? ((s: string) => process.stdout.write(s));
  const ckptDir = path.join(command.config.out, 'checkpoint');
  let config = command.config;
  let saved: FinetuneState | null = null;
  if (command.resume) {
    const found = findCheckpoint(ckptDir);
    if (!found) throw new Error(`--resume: no checkpoint in ${ckptDir}; start the run without --resume`);
    saved = readState(found);
    config = resumedConfig(saved.config, command.explicit, FT_RESUMABLE, command.sources);
    validateFinetuneConfig(config);
    if (saved.step >= config.steps && !command.exportDir) {
      // before anything is loaded or written: the run folder stays as it is
      write(upToDateMessage(config.out, saved.step, config.steps, null));
      return {
        config,
        step: saved.step,
        sessionSteps: 0,
        loss: NaN,
        testAccuracy: NaN,
        testCount: 0,
        stepsPerSec: 0,
        wallSeconds: saved.wallSeconds,
        interrupted: false,
        upToDate: true,
      };
    }
  } else if (fs.existsSync(ckptDir) || findCheckpoint(ckptDir)) {
    throw new Error(`${config.out} already holds a run (checkpoint/); add --resume to continue it, or pick another --out`);
  }

  // the model: from the checkpoint (resume) or the generative model folder
  let modelConfig: ModelConfig;
  let tokenizerMeta: PixelTokenizerMeta;
  let sourceTraining: unknown;
  let backbone: Map<string, { data: ArrayLike<number> }> | null = null;
  if (saved) {
    modelConfig = configFromJson(saved.modelConfig, `${ckptDir}/state.json modelConfig`);
    tokenizerMeta = saved.tokenizer;
    sourceTraining = saved.source;
  } else {
    const meta = readMeta(config.model);
    if (meta.task === 'classify') throw new Error(`--model ${config.model} is already a classifier; give the generative model it came from`);
    const folder = readModelFolder(config.model);
    modelConfig = folder.config;
    tokenizerMeta = pixelTokenizerOf(meta, path.join(config.model, 'meta.json'), modelConfig);
    sourceTraining = meta.training ?? null;
    backbone = folder.weights;
  }
  const data = await loadLabeledData(config, tokenizerMeta);
  const K = data.classNames.length;
  if (saved && JSON.stringify(saved.classNames) !== JSON.stringify(data.classNames)) {
    throw new Error(`--resume: the data's classes (${data.classNames.join(', ')}) differ from the run's (${saved.classNames.join(', ')})`);
  }

  const entries = classifyEntries(modelConfig, K);
  const session = await OrtClassifySession.create(modelConfig, K, { mode: config.probe ? 'probe' : 'full', threads: config.threads });
  const trainableIndex = session.trainableIndices();
  let model: Float32Array[];
  let ema: Float32Array[];
  const optimizer = new HostAdamW(
    trainableIndex.map((i) => entries[i].shape.reduce((a, b) => a * b, 1)),
    { lr: config.lr, beta1: config.beta1, beta2: config.beta2, weightDecay: config.weightDecay },
  );
  let step = 0;
  let wallBefore = 0;
  let rows: LogRow[] = [];
  const csvFile = path.join(config.out, 'log.csv');
  const evalFile = path.join(config.out, 'eval.csv');
  if (saved) {
    const found = findCheckpoint(ckptDir)!;
    model = readArrays(path.join(found, 'params.safetensors'), entries);
    ema = readArrays(path.join(found, 'ema.safetensors'), entries);
    const opt = readSafetensors(path.join(found, 'optimizer.safetensors')).tensors;
    const moment = (k: string, i: number) => {
      const t = opt.get(k);
      if (!t || t.data.length !== model[i].length)
        throw new Error(`${found}/optimizer.safetensors: ${k} is missing or has another size; the checkpoint does not match`);
      return t.data;
    };
    optimizer.setState({
      stepCount: saved.adamStepCount,
      m: trainableIndex.map((i) => moment(`m.${entries[i].key}`, i)),
      v: trainableIndex.map((i) => moment(`v.${entries[i].key}`, i)),
    });
    step = saved.step;
    wallBefore = saved.wallSeconds;
    rows = readCsv(csvFile, step);
  } else {
    const headRng = createRng(`${config.seed}:head`);
    const head = initialHead(modelConfig.hiddenSize, K, () => headRng.normal());
    const fresh = config.scratch ? initialWeights(trainingEntries(modelConfig), config.seed) : null;
    const backboneEntries = entries.slice(0, entries.length - head.length);
    model = [...backboneEntries.map((e, i) => (fresh ? fresh[i] : toTrainingLayout(e, backbone!.get(e.key)!.data))), ...head];
    ema = model.map((a) => a.slice());
  }
  const tokenizer = pixelTokenizer({ imageSize: tokenizerMeta.imageSize, channels: tokenizerMeta.channels, patchSize: tokenizerMeta.patchSize });
  const evalNow = Math.min(config.evalCount, data.test.count);
  const exportTo = (dir: string, testAccuracy: number, steps: number, wallSeconds: number) => {
    writeClassifierFolder(dir, { config: modelConfig, classNames: [...data.classNames], params: ema }, tokenizerMeta, {
      dataset: config.data === 'mnist' || config.data === 'fashion-mnist' ? config.data : path.basename(path.resolve(config.data)),
      testAccuracy,
      testSet: data.test.name,
      testCount: data.test.count,
      training: {
        command: command.commandLine ?? '',
        mode: config.probe ? 'linear probe (head only)' : 'end to end',
        init: config.scratch ? 'scratch' : config.model,
        labels: config.labels || data.train.count,
        steps,
        batchSize: config.batchSize,
        lr: config.lr,
        warmupSteps: config.warmupSteps,
        weightDecay: config.weightDecay,
        emaDecay: config.emaDecay,
        seed: config.seed,
        wallSeconds: Math.round(wallSeconds),
        runtime: `onnxruntime-node, ${config.threads} threads`,
      },
      source: sourceTraining,
    });
  };
  try {
    if (saved && saved.step >= config.steps) {
      // nothing left to train: --export writes the classifier of the checkpoint
      const acc = await accuracy(session, ema, tokenizer, data.test, data.test.count);
      exportTo(command.exportDir!, acc, saved.step, saved.wallSeconds);
      write(
        `nothing left to train (step ${saved.step} of --steps ${config.steps}); test accuracy ${(100 * acc).toFixed(2)}% on ${data.test.count} images; exported the classifier to ${command.exportDir}\n`,
      );
      return {
        config,
        step: saved.step,
        sessionSteps: 0,
        loss: NaN,
        testAccuracy: acc,
        testCount: data.test.count,
        stepsPerSec: 0,
        wallSeconds: saved.wallSeconds,
        interrupted: false,
        upToDate: true,
      };
    }
    makeDirs(config.out);
    writeCsv(csvFile, rows);
    if (!saved) writeFileAtomic(evalFile, 'step,test_images,accuracy\n');
    const trained = trainableIndex.map((i) => entries[i]);
    const numTrained = trained.reduce((a, e) => a + e.shape.reduce((x, y) => x * y, 1), 0);
    const banner =
      `${saved ? `resuming ${config.out} at step ${step}` : `fine-tuning into ${config.out}`}: ${config.probe ? 'linear probe' : 'end to end'} from ` +
      `${config.scratch ? 'scratch (fresh weights)' : config.model}, ${numTrained.toLocaleString('en-US')} trained parameters; ` +
      `${data.train.count} labeled ${config.data} images of ${K} classes at ${tokenizerMeta.imageSize}x${tokenizerMeta.imageSize}, batch ${config.batchSize}; ` +
      `test: ${data.test.count} images (${data.test.name})\nruntime ort (onnxruntime-node, ${config.threads} thread${config.threads > 1 ? 's' : ''})\n`;
    const per = tokenizer.pixelsPerImage;
    const batchAt = (k: number) => {
      const images = new Uint8Array(config.batchSize * per);
      const labels = new Int32Array(config.batchSize);
      for (let j = 0; j < config.batchSize; j++) {
        const position = k * config.batchSize + j;
        const epoch = Math.floor(position / data.train.count);
        const i = createRngPermutation(config.seed, epoch, data.train.count)[position % data.train.count];
        images.set(data.train.images.subarray(i * per, (i + 1) * per), j * per);
        labels[j] = data.train.labels[i];
      }
      return { tokens: tokenizer.encode(images), labels };
    };
    const trainable = () => trainableIndex.map((i) => model[i]);
    let last = { loss: NaN };
    const result: LoopResult = await runTrainingLoop({
      run: config,
      checkpointDir: ckptDir,
      startStep: step,
      wallBefore,
      rows,
      banner,
      tty: command.tty,
      write,
      step: async (k) => {
        const batch = batchAt(k);
        const { loss, grads } = await session.lossAndGrads(model, batch.tokens, batch.labels);
        checkLoss(loss, config, k, ckptDir);
        last = { loss };
        return { loss, ...applyUpdate(optimizer, trainable(), grads, { ema, model }, config, k) };
      },
      save: (stepsDone, wallSeconds) =>
        writeCheckpointFolder(ckptDir, (tmp) => {
          writeSafetensors(path.join(tmp, 'params.safetensors'), officialStateDict(entries, model), { format: 'pt' });
          writeSafetensors(path.join(tmp, 'ema.safetensors'), officialStateDict(entries, ema), { format: 'pt' });
          writeSafetensors(
            path.join(tmp, 'optimizer.safetensors'),
            optimizerTensors(
              trained.map((e) => e.key),
              trained.map((e) => e.shape),
              optimizer.getState(),
            ),
          );
          const state: FinetuneState = {
            format: FINETUNE_CHECKPOINT_FORMAT,
            step: stepsDone,
            adamStepCount: optimizer.stepCount,
            config,
            modelConfig: configToJson(modelConfig),
            tokenizer: tokenizerMeta,
            classNames: [...data.classNames],
            wallSeconds,
            source: sourceTraining,
          };
          writeFileAtomic(path.join(tmp, 'state.json'), JSON.stringify(state, null, 2) + '\n');
        }),
      after: async (stepsDone) => {
        if (stepsDone % config.evalEvery !== 0 || stepsDone === config.steps) return;
        const acc = await accuracy(session, ema, tokenizer, data.test, evalNow);
        fs.appendFileSync(evalFile, `${stepsDone},${evalNow},${acc.toFixed(6)}\n`);
        write(`  step ${stepsDone}: test accuracy ${(100 * acc).toFixed(2)}% (first ${evalNow} test images)\n`);
      },
    });
    let testAccuracy = NaN;
    if (!result.interrupted) {
      testAccuracy = await accuracy(session, ema, tokenizer, data.test, data.test.count);
      fs.appendFileSync(evalFile, `${result.step},${data.test.count},${testAccuracy.toFixed(6)}\n`);
      write(`test accuracy ${(100 * testAccuracy).toFixed(2)}% on ${data.test.count} test images (${data.test.name})\n`);
      if (command.exportDir) {
        exportTo(command.exportDir, testAccuracy, result.step, result.wallSeconds);
        write(`exported the classifier to ${command.exportDir} (causalfusion classify --model ${command.exportDir} --input ...)\n`);
      }
    }
    return {
      config,
      step: result.step,
      sessionSteps: result.sessionSteps,
      loss: last.loss,
      testAccuracy,
      testCount: data.test.count,
      stepsPerSec: result.sessionSteps / Math.max(result.sessionSeconds, 1e-9),
      wallSeconds: result.wallSeconds,
      interrupted: result.interrupted,
      ...(result.signal ? { signal: result.signal } : {}),
    };
  } finally {
    await session.release();
  }
}

/** The epoch's order of the labeled images: a permutation that depends only on (seed, epoch). */
const permutations = new Map<string, Int32Array>();
function createRngPermutation(seed: number, epoch: number, count: number): Int32Array {
  const key = `${seed}:${epoch}:${count}`;
  let p = permutations.get(key);
  if (!p) {
    if (permutations.size > 4) permutations.clear();
    p = Int32Array.from(createRng(`${seed}:finetune-epoch:${epoch}`).permutation(count));
    permutations.set(key, p);
  }
  return p;
}

/** `causalfusion finetune` end to end: parse, run, say how it went. Returns null after --help. */
export async function runFinetuneCli(argv: string[], commandLine = `causalfusion finetune ${argv.join(' ')}`): Promise<FinetuneResult | null> {
  const command = parseFinetuneArgs(argv);
  if (command.help) {
    console.log(FINETUNE_USAGE);
    return null;
  }
  const r = await finetune({ ...command, commandLine });
  if (!r.interrupted && !r.upToDate) {
    console.log(
      `done: step ${r.step}, last loss ${r.loss.toFixed(4)}, test accuracy ${(100 * r.testAccuracy).toFixed(2)}%, ${r.stepsPerSec.toFixed(2)} steps/s this session; run folder ${r.config.out}`,
    );
  }
  return r;
}
