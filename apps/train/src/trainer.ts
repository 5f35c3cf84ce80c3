/**
 * The training loop. Per step: batch k (epoch-shuffled), every random draw of the step from the run's
 * RNG, the loss and gradients from the runtime (onnxruntime or tfjs: ./runtime), then one update on host
 * arrays (clip, AdamW at the warmed-up learning rate, EMA: ./update). Checkpoints (one format for both
 * runtimes), the log, the loss curve and sample grids come every N steps; a NaN loss stops the run
 * before it touches the weights. Nothing here loads tfjs: the tfjs runtime is loaded only when chosen.
 */
import * as fs from 'fs';
import * as path from 'path';
import { pixelTokenizer } from '@causalfusion/data';
import { createDiffusion } from '@causalfusion/diffusion';
import { OrtDenoiser } from '@causalfusion/onnx';
import { makeDirs } from '@causalfusion/safetensors';
import { sample } from '@causalfusion/sampler';
import { derived, officialStateDict, sizeOf, trainingEntries, type ModelConfig } from '@causalfusion/config';
import { loadVae, VaeTokenizer } from '@causalfusion/vae';
import { modelConfigOf, RESUMABLE_KEYS, TrainCommand, TrainConfig, validateTrainConfig, vaeOf } from './config';
import { BatchSampler, LatentBatchSampler, loadLatentData, loadTrainingData, type LatentTrainingData, type TrainingData } from './dataset';
import { CHECKPOINT_FORMAT, findCheckpoint, readCheckpointState, type CheckpointState } from './checkpoint';
import { classCheckpointModel, exportModel } from './export';
import { resumedConfig } from './flags';
import { writeGridPng } from './report';
import { describeWarmStart, openRun, saveRun } from './run';
import { LoopResult, runTrainingLoop, StepOutcome, upToDateMessage } from './loop';
import { createRuntime } from './runtime';
import { batchShard, drawStepRandomness, RecipeOptions } from './step';
import { applyUpdate, checkLoss } from './update';

export { applyUpdate, emaDecayAt, lrAt, NanLossError } from './update';

export interface TrainOptions extends TrainCommand {
  /** The command line that started the run (recorded in meta.json). */
  commandLine?: string;
  /** Output (default: process.stdout); `tty` picks the in-place bar. */
  write?: (s: string) => void;
  tty?: boolean;
}

export interface TrainResult {
  config: TrainConfig;
  /** Steps done in total, and in this session. */
  step: number;
  sessionSteps: number;
  /** Loss of the last step. */
  loss: number;
  /** Steps per second of this session. */
  stepsPerSec: number;
  wallSeconds: number;
  /** The runtime that computed the gradients and its setup (e.g. "ort: onnxruntime-node, 2 threads"). */
  backend: string;
  numParams: number;
  /** True when a SIGINT / SIGTERM stopped the run early (after saving a checkpoint). */
  interrupted: boolean;
  /** Which signal stopped it (exit status 130 for SIGINT, 143 for SIGTERM: {@link signalExitCode}). */
  signal?: 'SIGINT' | 'SIGTERM';
  /** True when --resume found the run already at --steps: nothing was trained or written. */
  upToDate?: boolean;
}

/** The config of this session: the saved one on --resume (with what --resume may change), or the given one. */
function sessionConfig(options: TrainOptions): { config: TrainConfig; resumedFrom: CheckpointState<TrainConfig> | null } {
  const dir = path.join(options.config.out, 'checkpoint');
  if (!options.resume) {
    // checkpoint.old/ alone is a complete checkpoint too (a crash between writeCheckpointFolder's renames)
    if (fs.existsSync(dir) || findCheckpoint(dir)) {
      throw new Error(`${options.config.out} already holds a run (checkpoint/); add --resume to continue it, or pick another --out`);
    }
    return { config: options.config, resumedFrom: null };
  }
  const saved = readCheckpointState<TrainConfig>(dir);
  // runs saved before the ORT runtime existed have no runtime / threads: the defaults, one ORT session
  const base = { ...saved.config, runtime: saved.config.runtime ?? options.config.runtime, threads: saved.config.threads ?? options.config.threads };
  if (!base.runtime || (base.runtime === 'ort' && options.explicit.workers === undefined)) base.workers = 1;
  const config = resumedConfig(base, options.explicit, RESUMABLE_KEYS, options.sources);
  if (config.runtime === 'ort' && options.explicit.workers === undefined) config.workers = 1;
  validateTrainConfig(config);
  return { config, resumedFrom: saved };
}

export async function train(options: TrainOptions): Promise<TrainResult> {
  const write = options.write ?? ((s: string) => process.stdout.write(s));
  const { config, resumedFrom } = sessionConfig(options);
  if (resumedFrom && config.steps <= resumedFrom.step) {
    // before anything is loaded or written: the run folder stays as it is
    write(upToDateMessage(config.out, resumedFrom.step, config.steps, options.exportDir));
    return {
      config,
      step: resumedFrom.step,
      sessionSteps: 0,
      loss: NaN,
      stepsPerSec: 0,
      wallSeconds: resumedFrom.wallSeconds,
      backend: 'none (nothing to do)',
      numParams: 0,
      interrupted: false,
      upToDate: true,
    };
  }
  const vaeFolder = vaeOf(config);
  const data: TrainingData | LatentTrainingData = vaeFolder ? loadLatentData(config) : await loadTrainingData(config);
  if (resumedFrom && JSON.stringify(resumedFrom.classNames) !== JSON.stringify(data.classNames)) {
    throw new Error(`--resume: the data's classes (${data.classNames.join(', ')}) differ from the run's (${resumedFrom.classNames!.join(', ')})`);
  }
  const modelConfig = modelConfigOf(config, data.classNames.length);
  const geometry = derived(modelConfig);
  const valuesPerSample = modelConfig.latentChannels * modelConfig.inputSize * modelConfig.inputSize;
  // sample grids decode latents through the VAE (one ORT thread: the cores are training)
  const vaeTokenizer = vaeFolder ? new VaeTokenizer(await loadVae(vaeFolder.dir, { threads: 1 }), config.patchSize) : null;

  // The model, its EMA (from the same initial weights) and AdamW's moments, as host arrays in the
  // training layout; every runtime reads and the one update writes them.
  const of = classCheckpointModel(modelConfig);
  const run = openRun(config, of, resumedFrom !== null, CHECKPOINT_FORMAT);
  const { model, ema, optimizer } = run;
  const ckptDir = path.join(config.out, 'checkpoint');

  const recipe: RecipeOptions = {
    arStepDecay: config.arStepDecay,
    arSteps: config.arSteps ?? 0,
    maxArWeight: config.maxArWeight,
    minArWeight: config.minArWeight,
    order: config.order,
    classDropout: config.classDropout,
  };
  const diffusion = createDiffusion({ respacing: '' });
  let nextBatch: (step: number) => { x: Float32Array; labels: Int32Array };
  if ('cache' in data) {
    const latents = new LatentBatchSampler(data, config.batchSize, config.seed);
    nextBatch = (k) => latents.batch(k, run.rng);
  } else {
    const pixels = new BatchSampler(data, config.batchSize, config.seed, config.flip);
    const tokenizer = pixelTokenizer({ imageSize: config.imageSize, channels: config.channels, patchSize: config.patchSize });
    nextBatch = (k) => {
      const batch = pixels.batch(k, run.rng);
      return { x: tokenizer.toNchw(batch.images), labels: batch.labels };
    };
  }
  const numParams = of.entries.reduce((a, e) => a + sizeOf(e.shape), 0);
  const runtime = await createRuntime(config.runtime, modelConfig, { threads: config.threads, workers: config.workers, backend: config.backend });
  const backend = `${runtime.name}: ${runtime.description}`;
  const why = config.runtime === 'ort' ? 'the default, ~7x faster than tfjs-wasm and ~2.5x PyTorch here (pnpm bench:train-step)' : 'as asked (--runtime tfjs)';
  const banner =
    `${resumedFrom ? `resuming ${config.out} at step ${run.step}` : `training into ${config.out}`}: ${numParams.toLocaleString('en-US')} parameters, ` +
    `${geometry.numTokens} tokens of ${geometry.tokenDim} values${vaeFolder ? ` (latents of ${vaeFolder.config.name})` : ''}, batch ${config.batchSize}\n` +
    `runtime ${runtime.name} (${runtime.description}): ${why}\n` +
    (run.warmStart ? describeWarmStart(run.warmStart) : '');

  /** One step: the runtime's loss and gradients of the batch, then the update. */
  const oneStep = async (k: number): Promise<StepOutcome> => {
    const batch = nextBatch(k);
    const rnd = drawStepRandomness(run.rng, config.batchSize, valuesPerSample, geometry.numTokens, diffusion.numTimesteps, recipe);
    const { loss, grads } = await runtime.lossAndGrads(model, batchShard({ x: batch.x, y: batch.labels }, rnd, recipe));
    checkLoss(loss, config, k, ckptDir);
    return { loss, ...applyUpdate(optimizer, run.trainable, grads, { ema, model }, config, k) };
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
      tty: options.tty,
      write,
      step: oneStep,
      save: (stepsDone, wallSeconds) => saveRun(run, of, config, CHECKPOINT_FORMAT, stepsDone, wallSeconds, { classNames: [...data.classNames] }),
      after: async (stepsDone) => {
        if (stepsDone % config.sampleEvery === 0 || stepsDone === config.steps) {
          await writeSamples(modelConfig, ema, config, data, path.join(config.out, 'samples', `step-${stepsDone}.png`), vaeTokenizer);
        }
      },
    });
    if (options.exportDir && !result.interrupted) {
      exportModel(modelConfig, ema, options.exportDir, config, data, {
        command: options.commandLine ?? '',
        steps: result.step,
        wallSeconds: Math.round(result.wallSeconds),
        backend,
        workers: config.workers,
      });
      write(`exported the EMA model to ${options.exportDir}\n`);
    }
  } finally {
    await runtime.close();
    await vaeTokenizer?.vae.release();
    if ('cache' in data) data.cache.close();
  }
  return {
    config,
    step: result.step,
    sessionSteps: result.sessionSteps,
    loss: result.last?.loss ?? NaN,
    stepsPerSec: result.sessionSteps / Math.max(result.sessionSeconds, 1e-9),
    wallSeconds: result.wallSeconds,
    backend,
    numParams,
    interrupted: result.interrupted,
    ...(result.signal ? { signal: result.signal } : {}),
  };
}

/**
 * A grid of EMA samples: one row per class (the first 10), `samplePerClass` columns. A latent model's
 * samples are decoded by `vae` (no clamping: latents are not in [-1, 1]).
 */
export async function writeSamples(
  modelConfig: ModelConfig,
  ema: Float32Array[],
  config: TrainConfig,
  data: Pick<TrainingData, 'classNames'>,
  file: string,
  vae: VaeTokenizer | null = null,
): Promise<void> {
  const tokenizer = vae ?? pixelTokenizer({ imageSize: config.imageSize, channels: config.channels, patchSize: config.patchSize });
  const classes = Math.min(10, data.classNames.length);
  const conditions = Array.from({ length: classes * config.samplePerClass }, (_, i) => Math.floor(i / config.samplePerClass));
  // onnxruntime on the calling thread only (the training runtime holds the cores between steps anyway)
  const denoiser = await OrtDenoiser.fromWeights(modelConfig, officialStateDict(trainingEntries(modelConfig), ema), { threads: 1, workers: 1 });
  try {
    const { tokens } = await sample(denoiser, {
      conditions,
      arSteps: Math.min(config.sampleArSteps, tokenizer.numTokens),
      diffusion: createDiffusion({ respacing: String(config.sampleSteps) }),
      cfgScale: config.classDropout > 0 ? config.sampleCfg : 1,
      seed: config.seed,
      clipDenoised: vae === null, // pixels are in [-1, 1]
    });
    makeDirs(path.dirname(file));
    await writeGridPng(file, await tokenizer.decode(tokens), conditions.length, config.imageSize, config.channels, config.samplePerClass);
  } finally {
    await denoiser.release();
  }
}
