/**
 * `--task multimodal`: the training config of one model for text-to-image and captioning
 * (@causalfusion/multimodal) on the captioned MNIST compositions or an image-text folder: its settings and
 * presets, the command-line flags, and the model config they describe.
 */
import * as fs from 'fs';
import * as os from 'os';
import type { MultimodalConfig } from '@causalfusion/config';
import { CANVAS_HEIGHT, CANVAS_WIDTH } from '@causalfusion/multimodal/data';
import {
  checkClipAndDecay,
  checkInitFrom,
  checkLearningRates,
  FlagKind,
  flagOf,
  GENERATIVE_RUN_FLAGS,
  OPTIMIZER_DEFAULTS,
  OPTIMIZER_FLAGS,
  parseFlags,
} from './flags';
import type { RunConfig } from './run';

/** The multimodal task's settings: its data, model and recipe, on top of a run's (./run). */
export interface MultimodalTrainConfig extends RunConfig {
  task: 'multimodal';
  /** `mnist-compositions` (the generated dataset) or an image-text folder (captions.jsonl + images). */
  data: string;
  /** Training items of the generated dataset. */
  trainCount: number;
  patchSize: number;
  textLength: number;
  hiddenSize: number;
  depth: number;
  numHeads: number;
  mlpRatio: number;
  batchSize: number;
  /** CFG: probability of the null caption for a text-to-image sample. */
  captionDropout: number;
  /** Probability of the captioning order [image | text] for a sample. */
  captionProb: number;
  /** loss = L_text + lambda * L_image. */
  lossLambda: number;
  arStepDecay: number;
  /** Cap on the AR steps of a training sample; 1 = plain diffusion on the image (the Transfusion-style baseline). */
  imageArStepsMax: number;
  maxArWeight: number;
  minArWeight: number;
  order: 'random' | 'raster';
  /** Extra image-loss weight of foreground tokens (0: every token alike, the official recipe). */
  foregroundWeight: number;
}

export type MultimodalPresetName = 'multimodal' | 'multimodal-tiny';

const MM_BASE: Omit<MultimodalTrainConfig, 'out'> = {
  task: 'multimodal',
  data: 'mnist-compositions',
  trainCount: 60000,
  patchSize: 4,
  textLength: 18,
  hiddenSize: 128,
  depth: 4,
  numHeads: 4,
  mlpRatio: 4,
  batchSize: 32,
  steps: 20000,
  ...OPTIMIZER_DEFAULTS,
  captionDropout: 0.1,
  captionProb: 0.5,
  lossLambda: 5,
  arStepDecay: 0.9,
  imageArStepsMax: 32,
  maxArWeight: 2,
  minArWeight: 1,
  order: 'random',
  foregroundWeight: 0,
  seed: 0,
  runtime: 'ort',
  threads: Math.max(1, os.availableParallelism()),
  workers: 1,
  checkpointEvery: 500,
  logEvery: 50,
};

/**
 * `multimodal`: the shipped model (32 image tokens of 4x4 pixels, 18 text ids, width 128, 4 blocks).
 * `multimodal-tiny`: tests and smoke runs.
 */
export const MULTIMODAL_PRESETS: Record<MultimodalPresetName, Partial<MultimodalTrainConfig>> = {
  multimodal: { hiddenSize: 128, depth: 4, numHeads: 4, batchSize: 32, steps: 8000, lr: 1e-3, warmupSteps: 500, emaDecay: 0.999, checkpointEvery: 500 },
  'multimodal-tiny': {
    trainCount: 512,
    hiddenSize: 32,
    depth: 1,
    numHeads: 2,
    mlpRatio: 2,
    batchSize: 8,
    steps: 20,
    warmupSteps: 5,
    emaDecay: 0.99,
    checkpointEvery: 10,
    logEvery: 5,
  },
};

/** What --resume may change. */
export const MM_RESUMABLE: readonly (keyof MultimodalTrainConfig)[] = [
  'steps',
  'runtime',
  'threads',
  'workers',
  'backend',
  'out',
  'checkpointEvery',
  'logEvery',
];

/** flag -> [config key, kind] */
export const MM_FLAGS: Record<string, [keyof MultimodalTrainConfig, FlagKind]> = {
  data: ['data', 'string'],
  'train-count': ['trainCount', 'int'],
  'patch-size': ['patchSize', 'int'],
  'text-length': ['textLength', 'int'],
  width: ['hiddenSize', 'int'],
  depth: ['depth', 'int'],
  heads: ['numHeads', 'int'],
  'mlp-ratio': ['mlpRatio', 'float'],
  ...OPTIMIZER_FLAGS,
  'caption-dropout': ['captionDropout', 'float'],
  'caption-prob': ['captionProb', 'float'],
  lambda: ['lossLambda', 'float'],
  'foreground-weight': ['foregroundWeight', 'float'],
  'ar-decay': ['arStepDecay', 'float'],
  'image-ar-steps-max': ['imageArStepsMax', 'int'],
  ...GENERATIVE_RUN_FLAGS,
  'log-every': ['logEvery', 'int'],
};

export const MULTIMODAL_USAGE = `usage: causalfusion train --task multimodal --out <run dir> [--preset multimodal|multimodal-tiny] [options]

  --data mnist-compositions|DIR   the generated captioned MNIST compositions (default), or an image-text folder
                         (captions.jsonl + images, resized to the 16x32 canvas)
  --caption-prob P       probability of the captioning order [image | text] per sample (default 0.5)
  --lambda X             loss = L_text + X * L_image (default 5, Transfusion's)
  --foreground-weight W  image tokens holding ink weigh 1 + W in L_image, blank ones 1 (renormalised; default 0)
  --image-ar-steps-max S cap on the AR steps of the image (1 = plain diffusion: the Transfusion-style baseline)
  --caption-dropout P    null caption for classifier-free guidance (default 0.1)
  --init-from DIR        start from the tensors of a model folder whose names and shapes match (a class model of
                         the same width and patch size gives the image path: blocks, embedders, final layer)
  --resume --export DIR --steps N --batch N --lr X --warmup N --ema-decay X --no-ema-warmup --clip X --seed N
  --width N --depth N --heads N --mlp-ratio X --patch-size N --text-length N --train-count N --order random|raster
  --ar-decay X --ar-weight-max X --ar-weight-min X --checkpoint-every N --log-every N
  --runtime ort|tfjs     ort (default: onnxruntime-node, faster here) or tfjs; --threads N (ort), --backend wasm|cpu|tensorflow (tfjs)`;

export interface MultimodalTrainCommand {
  config: MultimodalTrainConfig;
  resume: boolean;
  exportDir: string | null;
  /** The settings given: the flags, and the keys of a --preset given (as the class task's TrainCommand). */
  explicit: Partial<MultimodalTrainConfig>;
  /** Where each explicit setting came from ("--width", "--preset multimodal-tiny"). */
  sources?: Partial<Record<keyof MultimodalTrainConfig, string>>;
}

export function validateMultimodalTrainConfig(c: MultimodalTrainConfig): void {
  for (const k of [
    'trainCount',
    'patchSize',
    'textLength',
    'hiddenSize',
    'depth',
    'numHeads',
    'batchSize',
    'steps',
    'workers',
    'checkpointEvery',
    'logEvery',
    'imageArStepsMax',
  ] as const) {
    const v = c[k];
    if (!Number.isInteger(v) || v < 1) throw new Error(`${flagOf(MM_FLAGS, k)} must be a positive integer, got ${String(v)}`);
  }
  if (!c.out) throw new Error('give the run folder with --out <dir> (e.g. --out runs/multimodal)');
  if (c.workers !== 1) throw new Error('--task multimodal runs one replica for now; drop --workers');
  if (c.runtime !== 'ort' && c.runtime !== 'tfjs') throw new Error(`--runtime must be ort or tfjs, got ${String(c.runtime)}`);
  if (!Number.isInteger(c.threads) || c.threads < 1) throw new Error(`--threads must be a positive integer, got ${String(c.threads)}`);
  if (CANVAS_HEIGHT % c.patchSize || CANVAS_WIDTH % c.patchSize)
    throw new Error(`--patch-size ${c.patchSize} must divide the ${CANVAS_HEIGHT}x${CANVAS_WIDTH} canvas`);
  checkLearningRates(c, ['beta1', 'beta2', 'emaDecay', 'captionDropout'], (k) => flagOf(MM_FLAGS, k));
  if (!(c.captionProb >= 0 && c.captionProb <= 1)) throw new Error(`--caption-prob must be in [0, 1], got ${c.captionProb}`);
  if (!(c.lossLambda > 0)) throw new Error(`--lambda must be positive, got ${c.lossLambda}`);
  if (!(c.foregroundWeight >= 0)) throw new Error(`--foreground-weight must be >= 0, got ${c.foregroundWeight}`);
  if (!(c.mlpRatio > 0)) throw new Error(`--mlp-ratio must be positive, got ${c.mlpRatio}`);
  checkClipAndDecay(c);
  if (!(c.arStepDecay > 0 && c.arStepDecay <= 1)) throw new Error(`--ar-decay must be in (0, 1], got ${c.arStepDecay}`);
  for (const k of ['maxArWeight', 'minArWeight'] as const) if (!(c[k] >= 0)) throw new Error(`${flagOf(MM_FLAGS, k)} must be >= 0, got ${c[k]}`);
  if (c.order !== 'random' && c.order !== 'raster') throw new Error(`--order must be random or raster, got ${String(c.order)}`);
  if (!Number.isSafeInteger(c.seed) || c.seed < 0) throw new Error(`--seed must be an integer >= 0, got ${c.seed}`);
  if (c.backend !== undefined && !['tensorflow', 'wasm', 'cpu'].includes(c.backend))
    throw new Error(`--backend must be wasm, cpu or tensorflow, got "${c.backend}"`);
  if (c.data !== 'mnist-compositions' && !fs.existsSync(c.data)) throw new Error(`--data ${c.data}: not mnist-compositions or an image-text folder`);
  checkInitFrom(c);
}

/** Parse `--task multimodal` flags (argv may contain `--task multimodal`). */
export function parseMultimodalTrainArgs(argv: string[]): MultimodalTrainCommand {
  const { values, overrides } = parseFlags(
    argv,
    MM_FLAGS,
    { task: 'string', preset: 'string', resume: 'boolean', export: 'string', 'no-ema-warmup': 'boolean' },
    'causalfusion train --task multimodal --help',
  );
  if (values['no-ema-warmup']) overrides.emaWarmup = false;
  const preset = (values.preset as string | undefined) ?? 'multimodal';
  if (!Object.hasOwn(MULTIMODAL_PRESETS, preset))
    throw new Error(`--preset: unknown multimodal preset "${preset}"; use one of ${Object.keys(MULTIMODAL_PRESETS).join(', ')}`);
  const config = {
    ...MM_BASE,
    ...MULTIMODAL_PRESETS[preset as MultimodalPresetName],
    ...overrides,
    out: (overrides.out as string) ?? '',
  } as MultimodalTrainConfig;
  validateMultimodalTrainConfig(config);
  // an explicit --preset gives its settings (not the default one: a resume without --preset keeps the checkpoint's)
  const explicit: Partial<MultimodalTrainConfig> = {};
  const sources: Partial<Record<keyof MultimodalTrainConfig, string>> = {};
  if (values.preset !== undefined) {
    for (const key of Object.keys(MULTIMODAL_PRESETS[preset as MultimodalPresetName]) as (keyof MultimodalTrainConfig)[]) {
      if (MM_RESUMABLE.includes(key) || overrides[key] !== undefined) continue;
      (explicit as Record<string, unknown>)[key] = config[key];
      sources[key] = `--preset ${preset}`;
    }
  }
  for (const key of Object.keys(overrides) as (keyof MultimodalTrainConfig)[]) sources[key] = flagOf(MM_FLAGS, key);
  if (values['no-ema-warmup']) sources.emaWarmup = '--no-ema-warmup';
  Object.assign(explicit, overrides);
  return { config, resume: Boolean(values.resume), exportDir: (values.export as string | undefined) ?? null, explicit, sources };
}

export function multimodalModelConfig(c: MultimodalTrainConfig, vocabSize: number): MultimodalConfig {
  return {
    imageHeight: CANVAS_HEIGHT,
    imageWidth: CANVAS_WIDTH,
    channels: 1,
    patchSize: c.patchSize,
    textLength: c.textLength,
    vocabSize,
    hiddenSize: c.hiddenSize,
    depth: c.depth,
    numHeads: c.numHeads,
    mlpRatio: c.mlpRatio,
    captionDropoutProb: c.captionDropout,
  };
}
