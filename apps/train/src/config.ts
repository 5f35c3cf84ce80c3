/**
 * The class-conditional task (the default `--task class`): every knob of the official recipe, the presets,
 * the command-line flags (shared by `causalfusion-train` and `causalfusion train`), and the model config a
 * run describes. The multimodal task's are in ./multimodal-config; ./task picks between them.
 */
import * as os from 'os';
import * as path from 'path';
import type { ModelConfig } from '@causalfusion/config';
import { latentSizeOf, readVaeConfig, type VaeConfig } from '@causalfusion/vae';
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

/** The class task's settings: its data, model and recipe, on top of a run's (./run). */
export interface TrainConfig extends RunConfig {
  /**
   * `pixel`: the model works on pixels (p x p patches in [-1, 1]). `vae:DIR`: on the latents of the VAE
   * folder DIR, read from a latent cache (`data`), scaled by the VAE's scale factor.
   */
  tokenizer: string;
  /** `mnist`, `fashion-mnist`, or a folder with one sub-folder per class; with a VAE, a latent cache file. */
  data: string;
  /** Image side and channels (MNIST / Fashion-MNIST are 28x28x1, resized when imageSize differs). */
  imageSize: number;
  channels: 1 | 3;
  /** Random horizontal flip of training images (off for digits, which flipping changes). */
  flip: boolean;

  /** Transformer geometry. */
  patchSize: number;
  hiddenSize: number;
  depth: number;
  numHeads: number;
  numCondTokens: number;
  mlpRatio: number;
  trainablePos: boolean;

  batchSize: number;
  /** Label dropout for classifier-free guidance. */
  classDropout: number;
  /** AR-step decay of splitIntegerExpDecay and the AR loss weights (max -> min, linear). */
  arStepDecay: number;
  /**
   * AR steps of every training sample: 0 (the official recipe) draws them per step (splitIntegerExpDecay
   * with arStepDecay); S > 0 fixes S_train = S equal splits (1: plain diffusion, the in-context DiT
   * baseline of the paper's Table 2). Runs saved before this setting existed read as 0.
   */
  arSteps: number;
  maxArWeight: number;
  minArWeight: number;
  /** `random`: a fresh token permutation per sample (the official recipe); `raster`: none. */
  order: 'random' | 'raster';

  /** A sample grid into `<out>/samples/` every sampleEvery steps: images per class, AR steps, respaced diffusion steps, CFG scale. */
  sampleEvery: number;
  samplePerClass: number;
  sampleArSteps: number;
  sampleSteps: number;
  sampleCfg: number;
}

export type PresetName = 'mnist' | 'tiny';

/**
 * `mnist`: the shipped MNIST model. Digits shrunk to 16x16 in 4x4 patches: 16 tokens of 16 values, a short
 * sequence, and tokens much narrower than the width. (28x28 in 7x7 patches also gives 16 tokens, but of 49
 * values: with eps-prediction and a 128-wide net the model then cannot pass the noise through precisely,
 * its x0 estimates at high noise are far worse than the data mean, and after 3,200 steps only ~15% of its
 * samples read as the requested class.) A narrow shallow net and a small batch fit many steps in CPU hours.
 * `tiny`: for tests and smoke runs.
 */
export const TRAIN_PRESETS: Record<PresetName, Partial<TrainConfig>> = {
  mnist: {
    data: 'mnist',
    imageSize: 16,
    channels: 1,
    patchSize: 4,
    hiddenSize: 128,
    depth: 4,
    numHeads: 4,
    numCondTokens: 4,
    batchSize: 64,
    steps: 20000,
    lr: 1e-3,
    warmupSteps: 500,
    emaDecay: 0.999,
    checkpointEvery: 500,
    sampleEvery: 2000,
  },
  tiny: {
    data: 'mnist',
    imageSize: 28,
    channels: 1,
    patchSize: 7,
    hiddenSize: 32,
    depth: 1,
    numHeads: 2,
    numCondTokens: 2,
    batchSize: 8,
    steps: 20,
    lr: 1e-3,
    warmupSteps: 5,
    emaDecay: 0.99,
    checkpointEvery: 10,
    sampleEvery: 10,
    samplePerClass: 1,
    sampleSteps: 5,
  },
};

/** The official recipe around the presets. */
const BASE: Omit<TrainConfig, 'out'> = {
  tokenizer: 'pixel',
  data: 'mnist',
  imageSize: 28,
  channels: 1,
  flip: false,
  patchSize: 7,
  hiddenSize: 128,
  depth: 4,
  numHeads: 4,
  numCondTokens: 4,
  mlpRatio: 4,
  trainablePos: true,
  batchSize: 64,
  steps: 20000,
  ...OPTIMIZER_DEFAULTS,
  classDropout: 0.1,
  arStepDecay: 0.9,
  arSteps: 0,
  maxArWeight: 2,
  minArWeight: 1,
  order: 'random',
  seed: 0,
  runtime: 'ort',
  threads: Math.max(1, os.availableParallelism()),
  workers: 1,
  checkpointEvery: 500,
  sampleEvery: 2000,
  logEvery: 50,
  samplePerClass: 8,
  sampleArSteps: 4,
  sampleSteps: 50,
  sampleCfg: 2,
};

/** A full config: base recipe, then the preset, then overrides; validated. */
export function makeTrainConfig(preset: PresetName | null, overrides: Partial<TrainConfig> & { out: string }): TrainConfig {
  if (preset !== null && !Object.hasOwn(TRAIN_PRESETS, preset)) {
    throw new Error(`unknown preset "${preset}": use one of ${Object.keys(TRAIN_PRESETS).join(', ')}`);
  }
  const defined = Object.fromEntries(Object.entries(overrides).filter(([, v]) => v !== undefined));
  const config = { ...BASE, ...(preset ? TRAIN_PRESETS[preset] : {}), ...defined } as TrainConfig;
  const vae = vaeOf(config);
  if (vae) {
    // the images are the VAE's: its size, RGB
    if (defined.imageSize !== undefined && defined.imageSize !== vae.config.imageSize) {
      throw new Error(`--image-size ${defined.imageSize}: the VAE ${vae.config.name} works on ${vae.config.imageSize}-pixel images; drop --image-size`);
    }
    if (defined.channels !== undefined && defined.channels !== 3) throw new Error('--channels: a VAE works on RGB images; drop --channels');
    config.imageSize = vae.config.imageSize;
    config.channels = 3;
    // absolute, so that a resumed run and the exported model find it from anywhere
    config.tokenizer = `vae:${path.resolve(vae.dir)}`;
  }
  validateTrainConfig(config);
  return config;
}

/** The VAE folder of `--tokenizer vae:DIR` and its vae.json, or null for `pixel`. */
export function vaeOf(c: Pick<TrainConfig, 'tokenizer'>): { dir: string; config: VaeConfig } | null {
  // runs started before VAEs existed have no tokenizer in their saved config: pixels
  if (c.tokenizer === undefined || c.tokenizer === 'pixel') return null;
  if (typeof c.tokenizer !== 'string' || !c.tokenizer.startsWith('vae:') || c.tokenizer.length === 4) {
    throw new Error(`--tokenizer must be pixel or vae:DIR (a VAE folder: encoder.onnx, decoder.onnx, vae.json), got "${String(c.tokenizer)}"`);
  }
  const dir = c.tokenizer.slice(4);
  try {
    return { dir, config: readVaeConfig(dir) };
  } catch (e) {
    throw new Error(`--tokenizer ${c.tokenizer}: ${(e as Error).message}`);
  }
}

/** What the transformer sees: pixels (imageSize x channels) or latents (latent side x latent channels). */
export function inputGeometry(c: Pick<TrainConfig, 'tokenizer' | 'imageSize' | 'channels'>): { inputSize: number; channels: number } {
  const vae = vaeOf(c);
  return vae ? { inputSize: latentSizeOf(vae.config), channels: vae.config.latentChannels } : { inputSize: c.imageSize, channels: c.channels };
}

/**
 * The largest counts a run accepts: a batch's activations must fit in memory (a step holds every sample's
 * sequence at once), a sample grid is drawn in one call; the number of steps is not limited (a run streams
 * its log and checkpoints).
 */
export const TRAIN_LIMITS = {
  batchSize: 4096,
  imageSize: 1024,
  hiddenSize: 4096,
  depth: 256,
  numHeads: 128,
  numCondTokens: 1024,
  workers: 64,
  threads: 256,
  samplePerClass: 64,
  sampleArSteps: 4096,
  sampleSteps: 1000,
} as const satisfies Partial<Record<keyof TrainConfig, number>>;

export function validateTrainConfig(c: TrainConfig): void {
  const positiveInts: (keyof TrainConfig)[] = [
    'imageSize',
    'patchSize',
    'hiddenSize',
    'depth',
    'numHeads',
    'numCondTokens',
    'batchSize',
    'steps',
    'workers',
    'checkpointEvery',
    'sampleEvery',
    'logEvery',
    'samplePerClass',
    'sampleArSteps',
    'sampleSteps',
  ];
  // messages name the flag (e.g. --width for hiddenSize), and what it allows
  const f = (k: keyof TrainConfig) => flagOf(FLAGS, k);
  for (const k of positiveInts) {
    const v = c[k];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) throw new Error(`${f(k)} must be a positive integer, got ${String(v)}`);
  }
  for (const [k, max] of Object.entries(TRAIN_LIMITS) as [keyof typeof TRAIN_LIMITS, number][]) {
    if ((c[k] as number) > max) throw new Error(`${f(k)} ${c[k]} is over the maximum of ${max}`);
  }
  if (!c.out) throw new Error('give the run folder with --out <dir> (e.g. --out runs/mnist)');
  if (c.channels !== 1 && c.channels !== 3) throw new Error(`--channels must be 1 or 3, got ${String(c.channels)}`);
  const { inputSize } = inputGeometry(c);
  if (inputSize % c.patchSize !== 0) {
    throw new Error(
      c.tokenizer === 'pixel'
        ? `patch size ${c.patchSize} does not divide image size ${c.imageSize}`
        : `patch size ${c.patchSize} does not divide the latent side ${inputSize} (--tokenizer ${c.tokenizer})`,
    );
  }
  if (c.runtime !== 'ort' && c.runtime !== 'tfjs') throw new Error(`--runtime must be ort or tfjs, got ${String(c.runtime)}`);
  if (!Number.isInteger(c.threads) || c.threads < 1) throw new Error(`--threads must be a positive integer, got ${String(c.threads)}`);
  if (c.runtime === 'ort' && c.workers > 1)
    throw new Error(`--workers ${c.workers} is for --runtime tfjs (data-parallel replicas); onnxruntime uses --threads N`);
  if (c.workers > c.batchSize) throw new Error(`${c.workers} workers need a batch of at least ${c.workers} (got --batch ${c.batchSize})`);
  checkLearningRates(c, ['beta1', 'beta2', 'emaDecay', 'classDropout'], f);
  if (!(c.mlpRatio > 0)) throw new Error(`--mlp-ratio must be positive, got ${c.mlpRatio}`);
  if (!(c.arStepDecay > 0 && c.arStepDecay <= 1)) throw new Error(`--ar-decay must be in (0, 1], got ${c.arStepDecay}`);
  if (c.arSteps !== undefined && !(Number.isInteger(c.arSteps) && c.arSteps >= 0))
    throw new Error(`--ar-steps must be an integer >= 0 (0: random AR steps), got ${c.arSteps}`);
  if (c.arSteps > (inputSize / c.patchSize) ** 2)
    throw new Error(`--ar-steps ${c.arSteps} is more than the ${(inputSize / c.patchSize) ** 2} tokens of a sample`);
  for (const k of ['maxArWeight', 'minArWeight'] as const) if (!(c[k] >= 0)) throw new Error(`${f(k)} must be >= 0, got ${c[k]}`);
  checkClipAndDecay(c);
  checkInitFrom(c);
  if (c.order !== 'random' && c.order !== 'raster') throw new Error(`--order must be random or raster, got ${String(c.order)}`);
  if (!Number.isSafeInteger(c.seed) || c.seed < 0) throw new Error(`--seed must be an integer >= 0, got ${c.seed}`);
  if (!(c.sampleCfg >= 1)) throw new Error(`--sample-cfg must be >= 1, got ${c.sampleCfg}`);
}

/** The transformer config a training config describes. */
export function modelConfigOf(c: TrainConfig, numClasses: number): ModelConfig {
  const { inputSize, channels } = inputGeometry(c);
  return {
    inputSize,
    patchSize: c.patchSize,
    latentChannels: channels,
    hiddenSize: c.hiddenSize,
    numCondTokens: c.numCondTokens,
    depth: c.depth,
    numHeads: c.numHeads,
    mlpRatio: c.mlpRatio,
    numClasses,
    classDropoutProb: c.classDropout,
    trainablePos: c.trainablePos,
  };
}

/** What the command line asks for: the config plus what to do with it. */
export interface TrainCommand {
  config: TrainConfig;
  /** Continue the run in `config.out` from its checkpoint. */
  resume: boolean;
  /** Write a model folder (EMA weights, config.json, meta.json) here at the end. */
  exportDir: string | null;
  help: boolean;
  /**
   * The settings given explicitly on the command line: the flags, and the keys of a --preset given (what
   * --resume may change, or must find equal to the checkpoint's).
   */
  explicit: Partial<TrainConfig>;
  /** Where each explicit setting came from ("--width", "--preset tiny"), for the --resume mismatch message. */
  sources?: Partial<Record<keyof TrainConfig, string>>;
}

/** What --resume may change; everything else stays as the run was started. */
export const RESUMABLE_KEYS: readonly (keyof TrainConfig)[] = [
  'steps',
  'runtime',
  'threads',
  'workers',
  'backend',
  'out',
  'checkpointEvery',
  'sampleEvery',
  'logEvery',
  'samplePerClass',
  'sampleArSteps',
  'sampleSteps',
  'sampleCfg',
];

/** flag -> [config key, kind] */
export const FLAGS: Record<string, [keyof TrainConfig, FlagKind]> = {
  tokenizer: ['tokenizer', 'string'],
  data: ['data', 'string'],
  'image-size': ['imageSize', 'int'],
  channels: ['channels', 'int'],
  flip: ['flip', 'bool'],
  'patch-size': ['patchSize', 'int'],
  width: ['hiddenSize', 'int'],
  depth: ['depth', 'int'],
  heads: ['numHeads', 'int'],
  'cond-tokens': ['numCondTokens', 'int'],
  'mlp-ratio': ['mlpRatio', 'float'],
  ...OPTIMIZER_FLAGS,
  'class-dropout': ['classDropout', 'float'],
  'ar-decay': ['arStepDecay', 'float'],
  'ar-steps': ['arSteps', 'int'],
  ...GENERATIVE_RUN_FLAGS,
  'sample-every': ['sampleEvery', 'int'],
  'log-every': ['logEvery', 'int'],
  'sample-per-class': ['samplePerClass', 'int'],
  'sample-ar-steps': ['sampleArSteps', 'int'],
  'sample-steps': ['sampleSteps', 'int'],
  'sample-cfg': ['sampleCfg', 'float'],
};

export const TRAIN_USAGE = `usage: causalfusion train --out <run dir> [--preset mnist|tiny] [options]

  --preset NAME          mnist (default: the shipped model) or tiny (smoke tests)
  --out DIR              run folder: checkpoint/, log.csv, loss.png, samples/step-<N>.png
  --resume               continue the run in --out from its checkpoint (exactly; --steps may be raised)
  --export DIR           at the end, write a model folder (EMA weights + config.json + meta.json)
  --runtime ort|tfjs     where gradients are computed: ort (default; the training step as ONNX graphs on
                         onnxruntime-node, faster here) or tfjs (wasm, or tensorflow where tfjs-node is installed)
  --threads N            ort: intra-op threads (default: the cores)
  --workers N            tfjs: data-parallel replicas on worker_threads (default 1)
  --data mnist|fashion-mnist|DIR   DIR: one sub-folder per class of PNG/JPEG (--channels 1|3, --flip)
  --tokenizer pixel|vae:DIR  pixel (default) or the latents of a VAE folder; with vae:DIR, --data is a latent
                         cache from \`causalfusion encode --vae DIR\` (flipped latents used half the time if cached)
  --image-size N         image side: folders are center-cropped and resized to it, MNIST resized from 28
  --steps N --batch N --lr X --warmup N --beta1 X --beta2 X --weight-decay X --clip X
  --ema-decay X --no-ema-warmup --class-dropout X --ar-decay X --ar-weight-max X --ar-weight-min X --order random|raster
  --ar-steps S           AR steps of every training sample: 0 = random (default, the official recipe: drawn per
                         step with --ar-decay); S > 0 = S equal splits (1: plain diffusion, the in-context DiT)
  --patch-size N --width N --depth N --heads N --cond-tokens N --mlp-ratio X --no-trainable-pos
  --seed N --backend wasm|cpu|tensorflow
  --init-from DIR        start from the tensors of a model folder whose names and shapes match (e.g. a shipped
                         model, to train it further on other data); the rest fresh from --seed
  --checkpoint-every N --sample-every N --log-every N
  --sample-per-class N --sample-ar-steps N --sample-steps N --sample-cfg X
  --task class|multimodal  class-conditional images (default), or one model for text-to-image and captioning
                         (see causalfusion train --task multimodal --help)`;

/** Parse the class task's command-line flags (`--task class` may be given); Errors name the flag. */
export function parseTrainArgs(argv: string[]): TrainCommand {
  const { values, overrides } = parseFlags(
    argv,
    FLAGS,
    { task: 'string', preset: 'string', resume: 'boolean', export: 'string', help: 'boolean', 'no-ema-warmup': 'boolean', 'no-trainable-pos': 'boolean' },
    'causalfusion train --help',
  );
  if (values['no-ema-warmup']) overrides.emaWarmup = false;
  if (values['no-trainable-pos']) overrides.trainablePos = false;
  if (overrides.backend !== undefined && !['tensorflow', 'wasm', 'cpu'].includes(overrides.backend as string)) {
    throw new Error(`--backend must be wasm, cpu or tensorflow, got "${String(overrides.backend)}"`);
  }
  const help = Boolean(values.help);
  // the default preset is not "given": a resumed run without --preset keeps its checkpoint's settings
  const presetGiven = values.preset !== undefined;
  const preset = (values.preset as string | undefined) ?? 'mnist';
  if (!Object.hasOwn(TRAIN_PRESETS, preset)) throw new Error(`--preset: unknown preset "${preset}"; use one of ${Object.keys(TRAIN_PRESETS).join(', ')}`);
  const out = (overrides.out as string | undefined) ?? '';
  const config = help ? ({ ...BASE, out } as TrainConfig) : makeTrainConfig(preset as PresetName, { ...(overrides as Partial<TrainConfig>), out });
  // an explicit --preset gives its settings (as the config has them: a VAE sets the image size), except
  // those --resume may change anyway (steps, checkpoint and sample intervals)
  const fromPreset: Partial<TrainConfig> = {};
  const sources: Partial<Record<keyof TrainConfig, string>> = {};
  if (presetGiven) {
    for (const key of Object.keys(TRAIN_PRESETS[preset as PresetName]) as (keyof TrainConfig)[]) {
      if (RESUMABLE_KEYS.includes(key) || overrides[key] !== undefined) continue;
      (fromPreset as Record<string, unknown>)[key] = config[key];
      sources[key] = `--preset ${preset}`;
    }
  }
  for (const key of Object.keys(overrides) as (keyof TrainConfig)[]) sources[key] = flagOf(FLAGS, key);
  if (values['no-ema-warmup']) sources.emaWarmup = '--no-ema-warmup';
  if (values['no-trainable-pos']) sources.trainablePos = '--no-trainable-pos';
  return {
    config,
    resume: Boolean(values.resume),
    exportDir: (values.export as string | undefined) ?? null,
    help,
    // the VAE folder as the config records it (absolute), so that --resume compares like with like
    explicit: { ...fromPreset, ...(overrides as Partial<TrainConfig>), ...(overrides.tokenizer !== undefined ? { tokenizer: config.tokenizer } : {}), out },
    sources,
  };
}
