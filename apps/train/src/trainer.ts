/**
 * The training loop. Per step: batch k (epoch-shuffled), every random draw of the step from the run's
 * RNG, shard gradients on the main thread and the workers, their sum, global-norm clip, AdamW at the
 * warmed-up learning rate, then the EMA. Checkpoints, the log, the loss curve and sample grids come
 * every N steps; a NaN loss stops the run before it touches the weights.
 */
import * as fs from 'fs';
import * as path from 'path';
import { initBackend, tf } from '@causalfusion/backend';
import { pixelTokenizer } from '@causalfusion/data';
import { createDiffusion } from '@causalfusion/diffusion';
import { createRng, Rng } from '@causalfusion/rng';
import { readSafetensors, writeFileAtomic, writeSafetensors } from '@causalfusion/safetensors';
import { sample } from '@causalfusion/sampler';
import { AdamW, CausalDiffusionModel, clipGradArrays, type GradientArrays, configToJson, CONFIG_FILE, createDenoiser, derived, saveModel, WEIGHTS_FILE } from '@causalfusion/transformer';
import { latentSizeOf, loadVae, VaeTokenizer } from '@causalfusion/vae';
import { modelConfigOf, RESUMABLE_KEYS, TrainCommand, TrainConfig, validateTrainConfig, vaeOf } from './config';
import { BatchSampler, LatentBatchSampler, loadLatentData, loadTrainingData, type LatentTrainingData, type TrainingData } from './dataset';
import { findCheckpoint, readCheckpoint, readCheckpointState, writeCheckpoint } from './checkpoint';
import { resumedConfig } from './flags';
import { ReplicaPool } from './parallel';
import { LogRow, readCsv, writeCsv, writeGridPng } from './report';
import { LoopResult, runTrainingLoop, StepOutcome } from './loop';
import { drawStepRandomness, RecipeOptions, shardGradients, shardOf, shardRanges, ShardResult } from './step';

/** The loss became NaN or infinite: the weights of that step were not applied. */
export class NanLossError extends Error {
  override name = 'NanLossError';
}

/**
 * Samples the main thread takes beyond an even share when there are workers: a worker loses about two
 * samples' time per step to receiving weights and sending gradients (measured with the mnist preset:
 * the main thread waited ~45 ms per step with an even split, ~8 ms with two samples more).
 */
const MAIN_EXTRA_SAMPLES = 2;

/** sum += part, elementwise; returns sum. */
function addInto(sum: Float32Array, part: Float32Array): Float32Array {
  for (let j = 0; j < sum.length; j++) sum[j] += part[j];
  return sum;
}

/** Learning rate at 0-based step `step`: linear warmup to `lr`, then constant. */
export function lrAt(config: Pick<TrainConfig, 'lr' | 'warmupSteps'>, step: number): number {
  return config.warmupSteps > 0 ? config.lr * Math.min(1, (step + 1) / config.warmupSteps) : config.lr;
}

/**
 * EMA decay of update number `updates` (1-based). With warmup, min(decay, (1 + n) / (10 + n)): the
 * EMA follows the model closely at first, so a short run's EMA is not stuck at the initial weights.
 */
export function emaDecayAt(config: Pick<TrainConfig, 'emaDecay' | 'emaWarmup'>, updates: number): number {
  return config.emaWarmup ? Math.min(config.emaDecay, (1 + updates) / (10 + updates)) : config.emaDecay;
}

/** ema = decay * ema + (1 - decay) * model, for each (EMA variable, model variable) pair. */
export function updateEma(pairs: ReadonlyArray<readonly [tf.Variable, tf.Variable]>, decay: number): void {
  tf.tidy(() => pairs.forEach(([e, m]) => e.assign(tf.add(tf.mul(e, decay), tf.mul(m, 1 - decay)))));
}

/**
 * The end of a training step k, the same for every task: the warmup learning rate, AdamW on the (clipped)
 * gradients, then the EMA at its decay for k + 1 updates.
 */
export function applyUpdate(
  optimizer: AdamW,
  grads: tf.NamedTensorMap | GradientArrays,
  emaPairs: ReadonlyArray<readonly [tf.Variable, tf.Variable]>,
  config: Pick<TrainConfig, 'lr' | 'warmupSteps' | 'emaDecay' | 'emaWarmup'>,
  k: number,
): { lr: number; emaDecay: number } {
  optimizer.lr = lrAt(config, k);
  optimizer.step(grads);
  const emaDecay = emaDecayAt(config, k + 1);
  updateEma(emaPairs, emaDecay);
  return { lr: optimizer.lr, emaDecay };
}

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
  backend: string;
  numParams: number;
  /** True when a SIGINT / SIGTERM stopped the run early (after saving a checkpoint). */
  interrupted: boolean;
}

/** The config of this session: the saved one on --resume (with what --resume may change), or the given one. */
function sessionConfig(options: TrainOptions): { config: TrainConfig; resumedFrom: ReturnType<typeof readCheckpointState> | null } {
  const dir = path.join(options.config.out, 'checkpoint');
  if (!options.resume) {
    if (fs.existsSync(dir)) {
      throw new Error(`${options.config.out} already holds a run (checkpoint/); add --resume to continue it, or pick another --out`);
    }
    return { config: options.config, resumedFrom: null };
  }
  const saved = readCheckpointState(dir);
  const config = resumedConfig(saved.config, options.explicit, RESUMABLE_KEYS);
  validateTrainConfig(config);
  return { config, resumedFrom: saved };
}

export async function train(options: TrainOptions): Promise<TrainResult> {
  const write = options.write ?? ((s: string) => process.stdout.write(s));
  const { config, resumedFrom } = sessionConfig(options);
  const backend = await initBackend({ backend: config.backend, quiet: true });
  const vaeFolder = vaeOf(config);
  const data: TrainingData | LatentTrainingData = vaeFolder ? loadLatentData(config) : await loadTrainingData(config);
  if (resumedFrom && JSON.stringify(resumedFrom.classNames) !== JSON.stringify(data.classNames)) {
    throw new Error(`--resume: the data's classes (${data.classNames.join(', ')}) differ from the run's (${resumedFrom.classNames.join(', ')})`);
  }
  const modelConfig = modelConfigOf(config, data.classNames.length);
  const geometry = derived(modelConfig);
  const valuesPerSample = modelConfig.latentChannels * modelConfig.inputSize * modelConfig.inputSize;
  // sample grids decode latents through the VAE (one ORT thread: the cores are training)
  const vaeTokenizer = vaeFolder ? new VaeTokenizer(await loadVae(vaeFolder.dir, { threads: 1 }), config.patchSize) : null;
  const model = new CausalDiffusionModel(modelConfig, { seed: config.seed });
  // The EMA starts from the same initial weights.
  const ema = new CausalDiffusionModel(modelConfig, { seed: config.seed });
  const optimizer = new AdamW(model.trainableVariables(), { lr: config.lr, beta1: config.beta1, beta2: config.beta2, weightDecay: config.weightDecay });
  const ckptDir = path.join(config.out, 'checkpoint');
  const csvFile = path.join(config.out, 'log.csv');
  let rng: Rng = createRng(config.seed);
  let step = 0;
  let wallBefore = 0;
  let rows: LogRow[] = [];
  if (resumedFrom) {
    const ckpt = readCheckpoint(ckptDir, model);
    model.loadStateDict(ckpt.model, `${ckptDir}/model.safetensors`);
    ema.loadStateDict(ckpt.ema, `${ckptDir}/ema.safetensors`);
    optimizer.setState(ckpt.optimizer);
    rng = Rng.fromState(ckpt.state.rng);
    step = ckpt.state.step;
    wallBefore = ckpt.state.wallSeconds;
    rows = readCsv(csvFile, step); // drop rows logged after the checkpoint
  }
  fs.mkdirSync(config.out, { recursive: true });
  writeCsv(csvFile, rows);

  const recipe: RecipeOptions = { arStepDecay: config.arStepDecay, maxArWeight: config.maxArWeight, minArWeight: config.minArWeight, order: config.order, classDropout: config.classDropout };
  const diffusion = createDiffusion({ respacing: '' });
  let nextBatch: (step: number) => { x: Float32Array; labels: Int32Array };
  if ('cache' in data) {
    const latents = new LatentBatchSampler(data, config.batchSize, config.seed);
    nextBatch = (k) => latents.batch(k, rng);
  } else {
    const pixels = new BatchSampler(data, config.batchSize, config.seed, config.flip);
    const tokenizer = pixelTokenizer({ imageSize: config.imageSize, channels: config.channels, patchSize: config.patchSize });
    nextBatch = (k) => {
      const batch = pixels.batch(k, rng);
      return { x: tokenizer.toNchw(batch.images), labels: batch.labels };
    };
  }
  const variables = model.trainableVariables();
  const modelEntries = model.stateEntries();
  const emaPairs = ema.stateEntries().map((e, i) => [e.variable, modelEntries[i].variable] as const);
  const numParams = model.numParams();
  const ranges = shardRanges(config.batchSize, config.workers, MAIN_EXTRA_SAMPLES);
  const pool = await ReplicaPool.start(config.workers - 1, modelConfig, config.backend);
  const banner =
    `${resumedFrom ? `resuming ${config.out} at step ${step}` : `training into ${config.out}`}: ${numParams.toLocaleString('en-US')} parameters, ` +
      `${geometry.numTokens} tokens of ${geometry.tokenDim} values${vaeFolder ? ` (latents of ${vaeFolder.config.name})` : ''}, batch ${config.batchSize}, ${config.workers} worker(s), backend ${backend}\n`;

  /** One step: shard gradients (main thread + workers), their sum, clip, AdamW, EMA. */
  const oneStep = async (k: number): Promise<StepOutcome> => {
    const batch = nextBatch(k);
    const rnd = drawStepRandomness(rng, config.batchSize, valuesPerSample, geometry.numTokens, diffusion.numTimesteps, recipe);
    const shards = ranges.map(([from, to]) => shardOf({ x: batch.x, y: batch.labels }, rnd, from, to, geometry.numTokens, recipe));
    let results: ShardResult[];
    if (pool.size > 0) {
      const weights = variables.map((v) => v.dataSync() as Float32Array);
      const remote = shards.slice(1).map((sh, i) => pool.run(i, weights.map((w) => w.slice()), sh));
      const local = shardGradients(model, diffusion, shards[0]);
      results = [local, ...(await Promise.all(remote))];
    } else results = [shardGradients(model, diffusion, shards[0])];

    const loss = results.reduce((a, r) => a + r.loss, 0);
    if (!Number.isFinite(loss)) {
      throw new NanLossError(
        `training stopped: the loss is ${loss} at step ${k + 1} (lr ${lrAt(config, k).toPrecision(3)}); the weights of that step were not applied. ` +
          `Resume from the last checkpoint in ${ckptDir} with a lower --lr or a longer --warmup (start a new run if there is none).`,
      );
    }
    // Sum the shards into shard 0's arrays in a fixed order (shard 0 first), so the result does not
    // depend on timing; clip and AdamW then work on these arrays, no tensors needed.
    const grads = results[0].grads;
    for (const r of results.slice(1)) {
      r.grads.forEach((part, i) => {
        if (part) grads[i] = grads[i] ? addInto(grads[i]!, part) : part;
      });
    }
    const gradNorm = clipGradArrays(grads, config.clipNorm);
    return { loss, gradNorm, ...applyUpdate(optimizer, grads, emaPairs, config, k) };
  };

  let result: LoopResult;
  try {
    result = await runTrainingLoop({
      run: config, checkpointDir: ckptDir, startStep: step, wallBefore, rows, banner, tty: options.tty, write,
      step: oneStep,
      save: (stepsDone, wallSeconds) =>
        writeCheckpoint(ckptDir, {
          model, ema, optimizer,
          state: { format: 'causalfusion-train-checkpoint', step: stepsDone, adamStepCount: optimizer.stepCount, rng: rng.getState(), config, classNames: [...data.classNames], wallSeconds },
        }),
      after: async (stepsDone) => {
        if (stepsDone % config.sampleEvery === 0 || stepsDone === config.steps) {
          await writeSamples(ema, config, data, path.join(config.out, 'samples', `step-${stepsDone}.png`), vaeTokenizer);
        }
      },
    });
    if (options.exportDir && !result.interrupted) {
      await exportModel(ema, options.exportDir, config, data, {
        command: options.commandLine ?? '', steps: result.step, wallSeconds: Math.round(result.wallSeconds), backend, workers: config.workers,
      });
      write(`exported the EMA model to ${options.exportDir}\n`);
    }
  } finally {
    await pool.close();
    await vaeTokenizer?.vae.release();
    if ('cache' in data) data.cache.close();
    optimizer.dispose();
    model.dispose();
    ema.dispose();
  }
  return {
    config, step: result.step, sessionSteps: result.sessionSteps, loss: result.last?.loss ?? NaN, stepsPerSec: result.sessionSteps / Math.max(result.sessionSeconds, 1e-9),
    wallSeconds: result.wallSeconds, backend, numParams, interrupted: result.interrupted,
  };
}

/**
 * A grid of EMA samples: one row per class (the first 10), `samplePerClass` columns. A latent model's
 * samples are decoded by `vae` (no clamping: latents are not in [-1, 1]).
 */
export async function writeSamples(
  ema: CausalDiffusionModel,
  config: TrainConfig,
  data: Pick<TrainingData, 'classNames'>,
  file: string,
  vae: VaeTokenizer | null = null,
): Promise<void> {
  const tokenizer = vae ?? pixelTokenizer({ imageSize: config.imageSize, channels: config.channels, patchSize: config.patchSize });
  const classes = Math.min(10, data.classNames.length);
  const conditions = Array.from({ length: classes * config.samplePerClass }, (_, i) => Math.floor(i / config.samplePerClass));
  const { tokens } = await sample(createDenoiser(ema), {
    conditions,
    arSteps: Math.min(config.sampleArSteps, tokenizer.numTokens),
    diffusion: createDiffusion({ respacing: String(config.sampleSteps) }),
    cfgScale: config.classDropout > 0 ? config.sampleCfg : 1,
    seed: config.seed,
    clipDenoised: vae === null, // pixels are in [-1, 1]
  });
  fs.mkdirSync(path.dirname(file), { recursive: true });
  await writeGridPng(file, await tokenizer.decode(tokens), conditions.length, config.imageSize, config.channels, config.samplePerClass);
}

/** How a model was made, for meta.json's `training` (command, steps, wall time, backend, workers). */
export interface TrainingProvenance {
  command: string;
  steps: number;
  wallSeconds: number;
  backend: string;
  workers: number;
}

/**
 * meta.json of a model folder: dataset, class names, the tokenizer (pixel geometry, or the VAE folder and
 * its latent geometry), how it was trained.
 */
export function modelMeta(config: TrainConfig, classNames: readonly string[], training: TrainingProvenance): Record<string, unknown> {
  const vae = vaeOf(config);
  const tokenizer = vae
    ? {
        kind: 'vae', dir: path.resolve(vae.dir), name: vae.config.name, scale: vae.config.scaleFactor, latentChannels: vae.config.latentChannels,
        latentSize: latentSizeOf(vae.config), imageSize: vae.config.imageSize, patchSize: config.patchSize,
      }
    : { kind: 'pixel', imageSize: config.imageSize, channels: config.channels, patchSize: config.patchSize, range: [-1, 1] };
  return {
    format: 'causalfusion-model',
    dataset: config.data === 'mnist' || config.data === 'fashion-mnist' ? config.data : path.basename(path.resolve(config.data)),
    classNames: [...classNames],
    tokenizer,
    training: {
      ...training,
      batchSize: config.batchSize, lr: config.lr, warmupSteps: config.warmupSteps, emaDecay: config.emaDecay, emaWarmup: config.emaWarmup,
      classDropout: config.classDropout, arStepDecay: config.arStepDecay, seed: config.seed, weights: 'ema',
    },
  };
}

/** A model folder (the CLI's `--model`): model.safetensors + config.json (EMA weights) + meta.json. */
export async function exportModel(
  ema: CausalDiffusionModel,
  dir: string,
  config: TrainConfig,
  data: Pick<TrainingData, 'classNames'>,
  training: TrainingProvenance,
): Promise<void> {
  await saveModel(ema, dir);
  writeFileAtomic(path.join(dir, 'meta.json'), JSON.stringify(modelMeta(config, data.classNames, training), null, 2) + '\n');
}

/**
 * The EMA weights of a run's latest checkpoint as a model folder, without a backend (no tfjs): for a run
 * still in progress, or one stopped early. Returns the checkpoint's step.
 */
export function exportCheckpoint(runDir: string, exportDir: string): { step: number; wallSeconds: number } {
  const ckptDir = path.join(runDir, 'checkpoint');
  const found = findCheckpoint(ckptDir);
  if (!found) throw new Error(`no training checkpoint in ${ckptDir}; give the --out folder of a training run`);
  const state = readCheckpointState(ckptDir);
  const ema = readSafetensors(path.join(found, 'ema.safetensors')).tensors;
  const configJson = configToJson(modelConfigOf(state.config, state.classNames.length));
  writeSafetensors(path.join(exportDir, WEIGHTS_FILE), ema, { format: 'pt', config: JSON.stringify(configJson) });
  writeFileAtomic(path.join(exportDir, CONFIG_FILE), JSON.stringify(configJson, null, 2) + '\n');
  const training: TrainingProvenance = {
    command: `exported from the checkpoint of ${runDir}`,
    steps: state.step,
    wallSeconds: Math.round(state.wallSeconds),
    backend: state.config.backend ?? 'not recorded',
    workers: state.config.workers,
  };
  writeFileAtomic(path.join(exportDir, 'meta.json'), JSON.stringify(modelMeta(state.config, state.classNames, training), null, 2) + '\n');
  return { step: state.step, wallSeconds: state.wallSeconds };
}
