/**
 * `--task multimodal`: one model for text-to-image and captioning (@causalfusion/multimodal) on the captioned
 * MNIST compositions (or an image-text folder). The loop is the class-conditional one's (warmup, clip, AdamW,
 * EMA with warmup, atomic checkpoints with exact --resume, log.csv, loss.png, --export), around
 * `multimodalLosses`. One replica (no worker_threads yet).
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { createDiffusion } from '@causalfusion/diffusion';
import type { CaptionCodec, MultimodalConfig, MultimodalModel, MultimodalRecipe } from '@causalfusion/multimodal';
import { createRng, Rng, type RngState } from '@causalfusion/rng';
import { makeDirs, readSafetensors, writeFileAtomic, writeSafetensors } from '@causalfusion/safetensors';
import { OrtMultimodalTrainingSession } from '@causalfusion/onnx';
import type { AdamW } from '@causalfusion/transformer';
import { findCheckpoint, optimizerTensors, writeCheckpointFolder } from './checkpoint';
import { FlagKind, flagOf, parseFlags, resumedConfig } from './flags';
import { LoopResult, runTrainingLoop, StepOutcome, upToDateMessage } from './loop';
import { LogRow, readCsv, writeCsv } from './report';
import { applyUpdate, checkLoss } from './update';

// @causalfusion/multimodal computes with tfjs: it is loaded when a multimodal run is parsed or started,
// so that loading this app (and the class task on onnxruntime) never loads tfjs.
const mm = () => require('@causalfusion/multimodal') as typeof import('@causalfusion/multimodal');

export interface MultimodalTrainConfig {
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
  steps: number;
  lr: number;
  warmupSteps: number;
  beta1: number;
  beta2: number;
  weightDecay: number;
  clipNorm: number;
  emaDecay: number;
  emaWarmup: boolean;
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
  seed: number;
  /** Where the loss and gradients are computed: `ort` (onnxruntime-node, `threads` intra-op threads) or `tfjs`. */
  runtime: 'ort' | 'tfjs';
  threads: number;
  workers: number;
  backend?: 'tensorflow' | 'wasm' | 'cpu';
  out: string;
  checkpointEvery: number;
  logEvery: number;
}

export type MultimodalPresetName = 'multimodal' | 'multimodal-tiny';

const MM_BASE: Omit<MultimodalTrainConfig, 'out'> = {
  task: 'multimodal', data: 'mnist-compositions', trainCount: 60000, patchSize: 4, textLength: 18,
  hiddenSize: 128, depth: 4, numHeads: 4, mlpRatio: 4, batchSize: 32, steps: 20000, lr: 1e-3, warmupSteps: 500,
  beta1: 0.9, beta2: 0.95, weightDecay: 0, clipNorm: 1, emaDecay: 0.999, emaWarmup: true, captionDropout: 0.1,
  captionProb: 0.5, lossLambda: 5, arStepDecay: 0.9, imageArStepsMax: 32, maxArWeight: 2, minArWeight: 1, order: 'random',
  seed: 0, runtime: 'ort', threads: Math.max(1, os.availableParallelism()), workers: 1, checkpointEvery: 500, logEvery: 50,
};

/**
 * `multimodal`: the shipped model (32 image tokens of 4x4 pixels, 18 text ids, width 128, 4 blocks).
 * `multimodal-tiny`: tests and smoke runs.
 */
export const MULTIMODAL_PRESETS: Record<MultimodalPresetName, Partial<MultimodalTrainConfig>> = {
  multimodal: { hiddenSize: 128, depth: 4, numHeads: 4, batchSize: 32, steps: 8000, lr: 1e-3, warmupSteps: 500, emaDecay: 0.999, checkpointEvery: 500 },
  'multimodal-tiny': {
    trainCount: 512, hiddenSize: 32, depth: 1, numHeads: 2, mlpRatio: 2, batchSize: 8, steps: 20, warmupSteps: 5, emaDecay: 0.99, checkpointEvery: 10, logEvery: 5,
  },
};

/** What --resume may change. */
const MM_RESUMABLE: readonly (keyof MultimodalTrainConfig)[] = ['steps', 'runtime', 'threads', 'workers', 'backend', 'out', 'checkpointEvery', 'logEvery'];

/** flag -> [config key, kind] */
export const MM_FLAGS: Record<string, [keyof MultimodalTrainConfig, FlagKind]> = {
  data: ['data', 'string'], 'train-count': ['trainCount', 'int'], 'patch-size': ['patchSize', 'int'], 'text-length': ['textLength', 'int'],
  width: ['hiddenSize', 'int'], depth: ['depth', 'int'], heads: ['numHeads', 'int'], 'mlp-ratio': ['mlpRatio', 'float'],
  batch: ['batchSize', 'int'], steps: ['steps', 'int'], lr: ['lr', 'float'], warmup: ['warmupSteps', 'int'], beta1: ['beta1', 'float'],
  beta2: ['beta2', 'float'], 'weight-decay': ['weightDecay', 'float'], clip: ['clipNorm', 'float'], 'ema-decay': ['emaDecay', 'float'],
  'caption-dropout': ['captionDropout', 'float'], 'caption-prob': ['captionProb', 'float'], lambda: ['lossLambda', 'float'],
  'ar-decay': ['arStepDecay', 'float'], 'image-ar-steps-max': ['imageArStepsMax', 'int'], 'ar-weight-max': ['maxArWeight', 'float'],
  'ar-weight-min': ['minArWeight', 'float'], order: ['order', 'string'], seed: ['seed', 'int'], runtime: ['runtime', 'string'], threads: ['threads', 'int'], workers: ['workers', 'int'],
  backend: ['backend', 'string'], out: ['out', 'string'], 'checkpoint-every': ['checkpointEvery', 'int'], 'log-every': ['logEvery', 'int'],
};

export const MULTIMODAL_USAGE = `usage: causalfusion train --task multimodal --out <run dir> [--preset multimodal|multimodal-tiny] [options]

  --data mnist-compositions|DIR   the generated captioned MNIST compositions (default), or an image-text folder
                         (captions.jsonl + images, resized to the 16x32 canvas)
  --caption-prob P       probability of the captioning order [image | text] per sample (default 0.5)
  --lambda X             loss = L_text + X * L_image (default 5, Transfusion's)
  --image-ar-steps-max S cap on the AR steps of the image (1 = plain diffusion: the Transfusion-style baseline)
  --caption-dropout P    null caption for classifier-free guidance (default 0.1)
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
  for (const k of ['trainCount', 'patchSize', 'textLength', 'hiddenSize', 'depth', 'numHeads', 'batchSize', 'steps', 'workers', 'checkpointEvery', 'logEvery', 'imageArStepsMax'] as const) {
    const v = c[k];
    if (!Number.isInteger(v) || v < 1) throw new Error(`${flagOf(MM_FLAGS, k)} must be a positive integer, got ${String(v)}`);
  }
  if (!c.out) throw new Error('give the run folder with --out <dir> (e.g. --out runs/multimodal)');
  if (c.workers !== 1) throw new Error('--task multimodal runs one replica for now; drop --workers');
  if (c.runtime !== 'ort' && c.runtime !== 'tfjs') throw new Error(`--runtime must be ort or tfjs, got ${String(c.runtime)}`);
  if (!Number.isInteger(c.threads) || c.threads < 1) throw new Error(`--threads must be a positive integer, got ${String(c.threads)}`);
  const { CANVAS_HEIGHT, CANVAS_WIDTH } = mm();
  if (CANVAS_HEIGHT % c.patchSize || CANVAS_WIDTH % c.patchSize) throw new Error(`--patch-size ${c.patchSize} must divide the ${CANVAS_HEIGHT}x${CANVAS_WIDTH} canvas`);
  if (!(c.lr > 0)) throw new Error(`--lr must be positive, got ${c.lr}`);
  if (!Number.isInteger(c.warmupSteps) || c.warmupSteps < 0) throw new Error(`--warmup must be an integer >= 0, got ${c.warmupSteps}`);
  for (const k of ['beta1', 'beta2', 'emaDecay', 'captionDropout'] as const) if (!(c[k] >= 0 && c[k] < 1)) throw new Error(`${flagOf(MM_FLAGS, k)} must be in [0, 1), got ${c[k]}`);
  if (!(c.captionProb >= 0 && c.captionProb <= 1)) throw new Error(`--caption-prob must be in [0, 1], got ${c.captionProb}`);
  if (!(c.lossLambda > 0)) throw new Error(`--lambda must be positive, got ${c.lossLambda}`);
  if (!(c.mlpRatio > 0)) throw new Error(`--mlp-ratio must be positive, got ${c.mlpRatio}`);
  if (!(c.clipNorm > 0)) throw new Error(`--clip must be positive, got ${c.clipNorm}`);
  if (!(c.weightDecay >= 0)) throw new Error(`--weight-decay must be >= 0, got ${c.weightDecay}`);
  if (!(c.arStepDecay > 0 && c.arStepDecay <= 1)) throw new Error(`--ar-decay must be in (0, 1], got ${c.arStepDecay}`);
  for (const k of ['maxArWeight', 'minArWeight'] as const) if (!(c[k] >= 0)) throw new Error(`${flagOf(MM_FLAGS, k)} must be >= 0, got ${c[k]}`);
  if (c.order !== 'random' && c.order !== 'raster') throw new Error(`--order must be random or raster, got ${String(c.order)}`);
  if (!Number.isSafeInteger(c.seed) || c.seed < 0) throw new Error(`--seed must be an integer >= 0, got ${c.seed}`);
  if (c.backend !== undefined && !['tensorflow', 'wasm', 'cpu'].includes(c.backend)) throw new Error(`--backend must be wasm, cpu or tensorflow, got "${c.backend}"`);
  if (c.data !== 'mnist-compositions' && !fs.existsSync(c.data)) throw new Error(`--data ${c.data}: not mnist-compositions or an image-text folder`);
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
  if (!Object.hasOwn(MULTIMODAL_PRESETS, preset)) throw new Error(`--preset: unknown multimodal preset "${preset}"; use one of ${Object.keys(MULTIMODAL_PRESETS).join(', ')}`);
  const config = { ...MM_BASE, ...MULTIMODAL_PRESETS[preset as MultimodalPresetName], ...overrides, out: (overrides.out as string) ?? '' } as MultimodalTrainConfig;
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
  const { CANVAS_HEIGHT, CANVAS_WIDTH } = mm();
  return {
    imageHeight: CANVAS_HEIGHT, imageWidth: CANVAS_WIDTH, channels: 1, patchSize: c.patchSize, textLength: c.textLength, vocabSize,
    hiddenSize: c.hiddenSize, depth: c.depth, numHeads: c.numHeads, mlpRatio: c.mlpRatio, captionDropoutProb: c.captionDropout,
  };
}

interface MultimodalState {
  format: 'causalfusion-multimodal-train-checkpoint';
  step: number;
  adamStepCount: number;
  rng: RngState;
  config: MultimodalTrainConfig;
  wallSeconds: number;
}

/** Images + captions to train on: the generated compositions (lazily) or a folder (loaded). */
interface CaptionSource {
  count: number;
  get(i: number): { image: Uint8Array; captions: string[] };
}

async function loadSource(c: MultimodalTrainConfig): Promise<CaptionSource> {
  const { CANVAS_HEIGHT, CANVAS_WIDTH, CaptionedDataset, readImageTextFolder } = mm();
  if (c.data === 'mnist-compositions') {
    const ds = new CaptionedDataset({ split: 'train', count: c.trainCount, seed: 0 });
    return { count: ds.count, get: (i) => ds.get(i) };
  }
  const items = await readImageTextFolder(c.data, CANVAS_HEIGHT, CANVAS_WIDTH);
  return { count: items.length, get: (i) => items[i] };
}

async function writeMultimodalCheckpoint(dir: string, model: MultimodalModel, ema: MultimodalModel, optimizer: AdamW, codec: CaptionCodec, state: MultimodalState): Promise<void> {
  await writeCheckpointFolder(dir, (tmp) => {
    mm().saveMultimodalModel(model, tmp, codec);
    writeSafetensors(path.join(tmp, 'ema.safetensors'), ema.stateDict(), { format: 'pt' });
    const opt = optimizer.getState();
    const entries = model.stateEntries();
    writeSafetensors(path.join(tmp, 'optimizer.safetensors'), optimizerTensors(entries.map((e) => e.key), entries.map((e) => [...e.variable.shape]), opt));
    writeFileAtomic(path.join(tmp, 'state.json'), JSON.stringify({ ...state, adamStepCount: opt.stepCount }, null, 2) + '\n');
  });
}

export interface MultimodalTrainResult {
  config: MultimodalTrainConfig;
  step: number;
  sessionSteps: number;
  loss: number;
  textLoss: number;
  imageLoss: number;
  stepsPerSec: number;
  numParams: number;
  backend: string;
  interrupted: boolean;
  /** Which signal stopped the run (exit status 130 for SIGINT, 143 for SIGTERM). */
  signal?: 'SIGINT' | 'SIGTERM';
  /** True when --resume found the run already at --steps: nothing was trained or written. */
  upToDate?: boolean;
}

export async function trainMultimodal(
  command: MultimodalTrainCommand & { commandLine?: string; write?: (s: string) => void; tty?: boolean },
): Promise<MultimodalTrainResult> {
  const write = command.write ?? ((s: string) => process.stdout.write(s));
  const ckptDir = path.join(command.config.out, 'checkpoint');
  let config = command.config;
  let saved: MultimodalState | null = null;
  if (command.resume) {
    const found = findCheckpoint(ckptDir);
    if (!found) throw new Error(`--resume: no checkpoint in ${ckptDir}; start the run without --resume`);
    saved = JSON.parse(fs.readFileSync(path.join(found, 'state.json'), 'utf8')) as MultimodalState;
    if (saved.format !== 'causalfusion-multimodal-train-checkpoint') {
      throw new Error(`--resume: ${found} is not the checkpoint of a --task multimodal run; drop --task multimodal to continue a class-conditional run`);
    }
    // runs saved before the ORT runtime existed have no runtime / threads: the defaults
    config = resumedConfig({ ...saved.config, runtime: saved.config.runtime ?? command.config.runtime, threads: saved.config.threads ?? command.config.threads }, command.explicit, MM_RESUMABLE, command.sources);
    validateMultimodalTrainConfig(config);
    if (config.steps <= saved.step) {
      // before anything is loaded or written: the run folder stays as it is
      write(upToDateMessage(config.out, saved.step, config.steps, command.exportDir));
      return {
        config, step: saved.step, sessionSteps: 0, loss: NaN, textLoss: NaN, imageLoss: NaN, stepsPerSec: 0, numParams: 0, backend: 'none (nothing to do)',
        interrupted: false, upToDate: true,
      };
    }
  } else if (fs.existsSync(ckptDir) || findCheckpoint(ckptDir)) {
    throw new Error(`${config.out} already holds a run (checkpoint/); add --resume to continue it, or pick another --out`);
  }
  const { CANVAS_HEIGHT, CANVAS_WIDTH, CaptionCodec, CanvasCodec, drawMultimodalRandomness, loadCaptionTokenizer, MultimodalModel, multimodalLosses, saveMultimodalModel } = mm();
  const { initBackend, tf } = require('@causalfusion/backend') as typeof import('@causalfusion/backend');
  const { AdamW } = require('@causalfusion/transformer') as typeof import('@causalfusion/transformer');
  const backend = await initBackend({ backend: config.backend, quiet: true });
  const codec = new CaptionCodec(loadCaptionTokenizer(), config.textLength);
  const source = await loadSource(config);
  const canvas = new CanvasCodec(CANVAS_HEIGHT, CANVAS_WIDTH, config.patchSize);
  const modelConfig = multimodalModelConfig(config, codec.vocabSize);
  const model = new MultimodalModel(modelConfig, { seed: config.seed });
  const ema = new MultimodalModel(modelConfig, { seed: config.seed });
  const optimizer = new AdamW(model.trainableVariables(), { lr: config.lr, beta1: config.beta1, beta2: config.beta2, weightDecay: config.weightDecay });
  const csvFile = path.join(config.out, 'log.csv');
  let rng: Rng = createRng(config.seed);
  let step = 0;
  let wallBefore = 0;
  let rows: LogRow[] = [];
  if (saved) {
    const found = findCheckpoint(ckptDir)!;
    model.loadStateDict(readSafetensors(path.join(found, 'model.safetensors')).tensors, `${found}/model.safetensors`);
    ema.loadStateDict(readSafetensors(path.join(found, 'ema.safetensors')).tensors, `${found}/ema.safetensors`);
    const opt = readSafetensors(path.join(found, 'optimizer.safetensors')).tensors;
    const keys = model.stateEntries().map((e) => e.key);
    optimizer.setState({ stepCount: saved.adamStepCount, m: keys.map((k) => opt.get(`m.${k}`)!.data), v: keys.map((k) => opt.get(`v.${k}`)!.data) });
    rng = Rng.fromState(saved.rng);
    step = saved.step;
    wallBefore = saved.wallSeconds;
    rows = readCsv(csvFile, step);
  }
  makeDirs(config.out);
  writeCsv(csvFile, rows);

  const recipe: MultimodalRecipe = {
    lossLambda: config.lossLambda, captionProb: config.captionProb, arStepDecay: config.arStepDecay, maxArSteps: config.imageArStepsMax,
    maxArWeight: config.maxArWeight, minArWeight: config.minArWeight, order: config.order,
  };
  const diffusion = createDiffusion({ respacing: '' });
  const nullCaption = codec.nullCaption();
  const T = config.textLength;
  // Batch k: items of an epoch permutation that depends only on (seed, epoch), so a resumed run sees the same batches.
  const perEpoch = Math.floor(source.count / config.batchSize);
  if (perEpoch < 1) throw new Error(`the data has ${source.count} items, fewer than a batch of ${config.batchSize}`);
  let permEpoch = -1;
  let perm: Int32Array = new Int32Array(0);
  const batchOf = (k: number) => {
    const epoch = Math.floor(k / perEpoch);
    if (epoch !== permEpoch) {
      perm = createRng(`multimodal-epoch:${config.seed}:${epoch}`).permutation(source.count);
      permEpoch = epoch;
    }
    const start = (k % perEpoch) * config.batchSize;
    const images = new Uint8Array(config.batchSize * CANVAS_HEIGHT * CANVAS_WIDTH);
    const text = new Int32Array(config.batchSize * T);
    for (let i = 0; i < config.batchSize; i++) {
      const item = source.get(perm[start + i]);
      images.set(item.image, i * CANVAS_HEIGHT * CANVAS_WIDTH);
      text.set(codec.encode(item.captions[rng.uniformInt(item.captions.length)]), i * T);
    }
    return { tokens: canvas.encode(images), text };
  };

  const variables = model.trainableVariables();
  const emaVariables = ema.trainableVariables();
  const numParams = model.numParams();
  const banner =
    `${saved ? `resuming ${config.out} at step ${step}` : `training into ${config.out}`} (multimodal): ${numParams.toLocaleString('en-US')} parameters, ` +
      `${canvas.numTokens} image tokens of ${canvas.tokenDim} values + ${T} text ids, batch ${config.batchSize}, ` +
      `caption order p=${config.captionProb}, lambda ${config.lossLambda}, image AR steps <= ${config.imageArStepsMax}\n`;
  let parts = { text: NaN, image: NaN };
  // the ORT runtime: the whole multimodal loss and its gradients as ONNX graphs (weights stay in the model's variables between steps)
  const ortSession = config.runtime === 'ort' ? await OrtMultimodalTrainingSession.create(modelConfig, { threads: config.threads, diffusion }) : null;
  const runtimeLine = ortSession ? `runtime ort (onnxruntime-node, ${config.threads} thread${config.threads > 1 ? 's' : ''}): the default, ~3.6x faster than tfjs-wasm here (1 thread, multimodal preset)` : `runtime tfjs (${backend}): as asked (--runtime tfjs)`;

  /** The loss, its parts and the gradients of step k's batch, on the chosen runtime. */
  const lossAndGrads = async (params: Float32Array[], batch: ReturnType<typeof batchOf>, rnd: ReturnType<typeof drawMultimodalRandomness>) => {
    if (ortSession) {
      const r = await ortSession.lossAndGrads(params, { batch, rnd, recipe, nullCaption });
      return { loss: r.loss, text: r.textLoss, image: r.imageLoss, grads: r.grads as (Float32Array | null)[] };
    }
    let text = NaN;
    let image = NaN;
    const { value, grads } = tf.variableGrads(() => {
      const l = multimodalLosses(model, diffusion, batch, rnd, recipe, nullCaption);
      text = l.text.dataSync()[0];
      image = l.image.dataSync()[0];
      return l.total;
    }, variables);
    const loss = value.dataSync()[0];
    const arrays = variables.map((v) => (grads[v.name] ? Float32Array.from(grads[v.name].dataSync() as Float32Array) : null));
    tf.dispose([value, ...Object.values(grads)]);
    return { loss, text, image, grads: arrays };
  };

  /** One step: both losses and the gradients, then the one update (clip, AdamW, EMA) on host arrays. */
  const oneStep = async (k: number): Promise<StepOutcome> => {
    const batch = batchOf(k);
    const rnd = drawMultimodalRandomness(rng, config.batchSize, canvas.numTokens, canvas.tokenDim, diffusion.numTimesteps, recipe, config.captionDropout);
    // the weights as host arrays, read once: the runtime's input and what the update changes
    const params = variables.map((v) => Float32Array.from(v.dataSync() as Float32Array));
    const r = await lossAndGrads(params, batch, rnd);
    parts = { text: r.text, image: r.image };
    checkLoss(r.loss, config, k, ckptDir);
    const emaParams = emaVariables.map((v) => Float32Array.from(v.dataSync() as Float32Array));
    const update = applyUpdate(optimizer.host, params, r.grads, { ema: emaParams, model: params }, config, k);
    tf.tidy(() => {
      variables.forEach((v, i) => v.assign(tf.tensor(params[i], v.shape)));
      emaVariables.forEach((v, i) => v.assign(tf.tensor(emaParams[i], v.shape)));
    });
    return { loss: r.loss, ...update, detail: `text ${parts.text.toFixed(4)}  image ${parts.image.toFixed(4)}` };
  };

  let result: LoopResult;
  try {
    result = await runTrainingLoop({
      run: config, checkpointDir: ckptDir, startStep: step, wallBefore, rows, banner: banner + runtimeLine + '\n', tty: command.tty, write,
      step: oneStep,
      save: (stepsDone, wallSeconds) =>
        writeMultimodalCheckpoint(ckptDir, model, ema, optimizer, codec, {
          format: 'causalfusion-multimodal-train-checkpoint', step: stepsDone, adamStepCount: optimizer.stepCount, rng: rng.getState(), config, wallSeconds,
        }),
    });
    if (command.exportDir && !result.interrupted) {
      saveMultimodalModel(ema, command.exportDir, codec, {
        dataset: config.data,
        training: {
          command: command.commandLine ?? '', steps: result.step, wallSeconds: Math.round(result.wallSeconds), backend, batchSize: config.batchSize,
          lr: config.lr, captionProb: config.captionProb, lossLambda: config.lossLambda, imageArStepsMax: config.imageArStepsMax, weights: 'ema',
        },
      });
      write(`exported the EMA model to ${command.exportDir}\n`);
    }
  } finally {
    await ortSession?.release();
    optimizer.dispose();
    model.dispose();
    ema.dispose();
  }
  return {
    config, step: result.step, sessionSteps: result.sessionSteps, loss: result.last?.loss ?? NaN, textLoss: parts.text, imageLoss: parts.image,
    stepsPerSec: result.sessionSteps / Math.max(result.sessionSeconds, 1e-9), numParams, backend, interrupted: result.interrupted,
    ...(result.signal ? { signal: result.signal } : {}),
  };
}
