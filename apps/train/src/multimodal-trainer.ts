/**
 * `--task multimodal`: the training loop of one model for text-to-image and captioning
 * (@causalfusion/multimodal) on the captioned MNIST compositions (or an image-text folder). It is the class
 * task's loop (warmup, clip, AdamW, EMA with warmup, atomic checkpoints with exact --resume, log.csv,
 * loss.png, --export) around `multimodalLosses`: the weights, the EMA and AdamW's moments are host arrays
 * (the parameter table of @causalfusion/config), the runtime computes the loss and gradients (./runtime),
 * and the onnxruntime path loads no tfjs. One replica (no worker_threads).
 */
import * as fs from 'fs';
import * as path from 'path';
import {
  drawMultimodalRandomness,
  MULTIMODAL_META_FORMAT,
  multimodalConfigToJson,
  multimodalParamEntries,
  officialStateDict,
  checkStateEntries,
  sizeOf,
  type MultimodalConfig,
  type MultimodalRecipe,
} from '@causalfusion/config';
import { createDiffusion } from '@causalfusion/diffusion';
import {
  CANVAS_HEIGHT,
  CANVAS_WIDTH,
  CanvasCodec,
  CaptionCodec,
  CaptionedDataset,
  loadCaptionTokenizer,
  readImageTextFolder,
  saveMultimodalModel,
} from '@causalfusion/multimodal/data';
import { createRng } from '@causalfusion/rng';
import { findCheckpoint, MULTIMODAL_CHECKPOINT_FORMAT, readCheckpointState, type CheckpointModel } from './checkpoint';
import { resumedConfig } from './flags';
import { LoopResult, runTrainingLoop, StepOutcome, upToDateMessage } from './loop';
import {
  MM_RESUMABLE,
  multimodalModelConfig,
  validateMultimodalTrainConfig,
  type MultimodalTrainCommand,
  type MultimodalTrainConfig,
} from './multimodal-config';
import { describeWarmStart, openRun, saveRun } from './run';
import { createMultimodalRuntime } from './runtime';
import { applyUpdate, checkLoss } from './update';

export interface MultimodalTrainResult {
  config: MultimodalTrainConfig;
  step: number;
  sessionSteps: number;
  loss: number;
  textLoss: number;
  imageLoss: number;
  stepsPerSec: number;
  numParams: number;
  /** The runtime that computed the gradients and its setup (e.g. "ort: onnxruntime-node, 2 threads"). */
  backend: string;
  interrupted: boolean;
  /** Which signal stopped the run (exit status 130 for SIGINT, 143 for SIGTERM). */
  signal?: 'SIGINT' | 'SIGTERM';
  /** True when --resume found the run already at --steps: nothing was trained or written. */
  upToDate?: boolean;
}

/** Images + captions to train on: the generated compositions (lazily) or a folder (loaded). */
interface CaptionSource {
  count: number;
  get(i: number): { image: Uint8Array; captions: string[] };
}

async function loadSource(c: MultimodalTrainConfig): Promise<CaptionSource> {
  if (c.data === 'mnist-compositions') {
    const ds = new CaptionedDataset({ split: 'train', count: c.trainCount, seed: 0 });
    return { count: ds.count, get: (i) => ds.get(i) };
  }
  const items = await readImageTextFolder(c.data, CANVAS_HEIGHT, CANVAS_WIDTH);
  return { count: items.length, get: (i) => items[i] };
}

/** What a multimodal checkpoint is of: the parameter table, and the model folder's config, tokenizer and meta. */
export function multimodalCheckpointModel(config: MultimodalConfig, codec: CaptionCodec): CheckpointModel {
  const entries = multimodalParamEntries(config);
  return {
    entries,
    folder: {
      config: multimodalConfigToJson(config),
      tokenizer: codec.tokenizer.toTokenizerJson(),
      meta: { format: MULTIMODAL_META_FORMAT, dataset: 'mnist-compositions', words: [...codec.words] },
    },
    check: (state, where) => checkStateEntries(entries, state, where, 'the multimodal config', '  Fix: resume with the settings the run was started with.'),
  };
}

/** The config of this session: the saved one on --resume (with what --resume may change), or the given one. */
function sessionConfig(
  command: MultimodalTrainCommand,
  ckptDir: string,
): { config: MultimodalTrainConfig; saved: { step: number; wallSeconds: number } | null } {
  if (!command.resume) {
    if (fs.existsSync(ckptDir) || findCheckpoint(ckptDir)) {
      throw new Error(`${command.config.out} already holds a run (checkpoint/); add --resume to continue it, or pick another --out`);
    }
    return { config: command.config, saved: null };
  }
  const saved = readCheckpointState<MultimodalTrainConfig>(ckptDir, MULTIMODAL_CHECKPOINT_FORMAT);
  // runs saved before the ORT runtime (or the foreground weight) existed lack those fields: the defaults
  const base = {
    ...saved.config,
    runtime: saved.config.runtime ?? command.config.runtime,
    threads: saved.config.threads ?? command.config.threads,
    foregroundWeight: saved.config.foregroundWeight ?? 0,
  };
  const config = resumedConfig(base, command.explicit, MM_RESUMABLE, command.sources);
  validateMultimodalTrainConfig(config);
  return { config, saved };
}

export async function trainMultimodal(
  command: MultimodalTrainCommand & { commandLine?: string; write?: (s: string) => void; tty?: boolean },
): Promise<MultimodalTrainResult> {
  const write = command.write ?? ((s: string) => process.stdout.write(s));
  const ckptDir = path.join(command.config.out, 'checkpoint');
  const { config, saved } = sessionConfig(command, ckptDir);
  if (saved && config.steps <= saved.step) {
    // before anything is loaded or written: the run folder stays as it is
    write(upToDateMessage(config.out, saved.step, config.steps, command.exportDir));
    return {
      config,
      step: saved.step,
      sessionSteps: 0,
      loss: NaN,
      textLoss: NaN,
      imageLoss: NaN,
      stepsPerSec: 0,
      numParams: 0,
      backend: 'none (nothing to do)',
      interrupted: false,
      upToDate: true,
    };
  }
  const codec = new CaptionCodec(loadCaptionTokenizer(), config.textLength);
  const source = await loadSource(config);
  const canvas = new CanvasCodec(CANVAS_HEIGHT, CANVAS_WIDTH, config.patchSize);
  const modelConfig = multimodalModelConfig(config, codec.vocabSize);
  const of = multimodalCheckpointModel(modelConfig, codec);
  // the model (every parameter trains), its EMA and AdamW's moments as host arrays in the training layout
  const run = openRun(config, of, saved !== null, MULTIMODAL_CHECKPOINT_FORMAT);
  const { model, ema, optimizer } = run;

  const recipe: MultimodalRecipe = {
    lossLambda: config.lossLambda,
    captionProb: config.captionProb,
    arStepDecay: config.arStepDecay,
    maxArSteps: config.imageArStepsMax,
    maxArWeight: config.maxArWeight,
    minArWeight: config.minArWeight,
    order: config.order,
    foregroundWeight: config.foregroundWeight,
  };
  const diffusion = createDiffusion({ respacing: '' });
  const nullCaption = codec.nullCaption();
  const Lt = config.textLength;
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
    const text = new Int32Array(config.batchSize * Lt);
    for (let i = 0; i < config.batchSize; i++) {
      const item = source.get(perm[start + i]);
      images.set(item.image, i * CANVAS_HEIGHT * CANVAS_WIDTH);
      text.set(codec.encode(item.captions[run.rng.uniformInt(item.captions.length)]), i * Lt);
    }
    return { tokens: canvas.encode(images), text };
  };

  const numParams = of.entries.reduce((a, e) => a + sizeOf(e.shape), 0);
  const runtime = await createMultimodalRuntime(config.runtime, modelConfig, { threads: config.threads, backend: config.backend, diffusion });
  const backend = `${runtime.name}: ${runtime.description}`;
  const why = config.runtime === 'ort' ? 'the default, ~3.6x faster than tfjs-wasm here (1 thread, multimodal preset)' : 'as asked (--runtime tfjs)';
  const banner =
    `${saved ? `resuming ${config.out} at step ${run.step}` : `training into ${config.out}`} (multimodal): ${numParams.toLocaleString('en-US')} parameters, ` +
    `${canvas.numTokens} image tokens of ${canvas.tokenDim} values + ${Lt} text ids, batch ${config.batchSize}, ` +
    `caption order p=${config.captionProb}, lambda ${config.lossLambda}, foreground weight ${config.foregroundWeight}, image AR steps <= ${config.imageArStepsMax}\n` +
    `runtime ${runtime.name} (${runtime.description}): ${why}\n` +
    (run.warmStart ? describeWarmStart(run.warmStart) : '');
  let parts = { text: NaN, image: NaN };

  /** One step: both losses and the gradients on the runtime, then the one update (clip, AdamW, EMA) on host arrays. */
  const oneStep = async (k: number): Promise<StepOutcome> => {
    const batch = batchOf(k);
    const rnd = drawMultimodalRandomness(run.rng, config.batchSize, canvas.numTokens, canvas.tokenDim, diffusion.numTimesteps, recipe, config.captionDropout);
    const r = await runtime.lossAndGrads(model, { batch, rnd, recipe, nullCaption });
    parts = { text: r.textLoss, image: r.imageLoss };
    checkLoss(r.loss, config, k, ckptDir);
    const update = applyUpdate(optimizer, run.trainable, r.grads, { ema, model }, config, k);
    return { loss: r.loss, ...update, detail: `text ${parts.text.toFixed(4)}  image ${parts.image.toFixed(4)}` };
  };

  let result: LoopResult;
  try {
    result = await runTrainingLoop({
      run: config,
      checkpointDir: ckptDir,
      startStep: run.step,
      wallBefore: run.wallBefore,
      rows: run.rows,
      banner,
      tty: command.tty,
      write,
      step: oneStep,
      save: (stepsDone, wallSeconds) => saveRun(run, of, config, MULTIMODAL_CHECKPOINT_FORMAT, stepsDone, wallSeconds),
    });
    if (command.exportDir && !result.interrupted) {
      saveMultimodalModel({ config: modelConfig, stateDict: () => officialStateDict(of.entries, ema) }, command.exportDir, codec, {
        dataset: config.data,
        training: {
          command: command.commandLine ?? '',
          steps: result.step,
          wallSeconds: Math.round(result.wallSeconds),
          backend,
          batchSize: config.batchSize,
          lr: config.lr,
          captionProb: config.captionProb,
          lossLambda: config.lossLambda,
          foregroundWeight: config.foregroundWeight,
          imageArStepsMax: config.imageArStepsMax,
          initFrom: config.initFrom ?? null,
          weights: 'ema',
        },
      });
      write(`exported the EMA model to ${command.exportDir}\n`);
    }
  } finally {
    await runtime.close();
  }
  return {
    config,
    step: result.step,
    sessionSteps: result.sessionSteps,
    loss: result.last?.loss ?? NaN,
    textLoss: parts.text,
    imageLoss: parts.image,
    stepsPerSec: result.sessionSteps / Math.max(result.sessionSeconds, 1e-9),
    numParams,
    backend,
    interrupted: result.interrupted,
    ...(result.signal ? { signal: result.signal } : {}),
  };
}
