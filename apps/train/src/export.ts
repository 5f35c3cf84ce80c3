/**
 * What a class-conditional run exports: a model folder (the CLI's `--model`) of the EMA weights, with the
 * meta.json schema of @causalfusion/config (`ModelMeta`: dataset, class names, the tokenizer, how it was
 * trained) that the CLI reads back; and what a checkpoint of such a run is of. The multimodal task exports
 * with `saveMultimodalModel` of @causalfusion/multimodal (./multimodal-trainer).
 */
import * as fs from 'fs';
import * as path from 'path';
import {
  checkStateDict,
  configToJson,
  MODEL_META_FORMAT,
  officialStateDict,
  trainingEntries,
  writeModelFolder,
  type ModelConfig,
  type ModelMeta,
  type PixelMeta,
  type VaeMeta,
} from '@causalfusion/config';
import { readSafetensors } from '@causalfusion/safetensors';
import { latentSizeOf } from '@causalfusion/vae';
import { FINETUNE_CHECKPOINT_FORMAT, findCheckpoint, readCheckpointState, type CheckpointModel } from './checkpoint';
import { modelConfigOf, vaeOf, type TrainConfig } from './config';

/** What a class-model checkpoint is of: the parameter table, config.json, and the official state-dict check. */
export function classCheckpointModel(config: ModelConfig): CheckpointModel {
  return { entries: trainingEntries(config), folder: { config: configToJson(config) }, check: (state, where) => checkStateDict(config, state, where) };
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
export function modelMeta(config: TrainConfig, classNames: readonly string[], training: TrainingProvenance): ModelMeta {
  const vae = vaeOf(config);
  const tokenizer: PixelMeta | VaeMeta = vae
    ? {
        kind: 'vae',
        dir: path.resolve(vae.dir),
        name: vae.config.name,
        scale: vae.config.scaleFactor,
        latentChannels: vae.config.latentChannels,
        latentSize: latentSizeOf(vae.config),
        imageSize: vae.config.imageSize,
        patchSize: config.patchSize,
      }
    : { kind: 'pixel', imageSize: config.imageSize, channels: config.channels, patchSize: config.patchSize, range: [-1, 1] };
  return {
    format: MODEL_META_FORMAT,
    dataset: config.data === 'mnist' || config.data === 'fashion-mnist' ? config.data : path.basename(path.resolve(config.data)),
    classNames: [...classNames],
    tokenizer,
    training: {
      ...training,
      batchSize: config.batchSize,
      lr: config.lr,
      warmupSteps: config.warmupSteps,
      emaDecay: config.emaDecay,
      emaWarmup: config.emaWarmup,
      classDropout: config.classDropout,
      arStepDecay: config.arStepDecay,
      arSteps: config.arSteps ?? 0,
      order: config.order,
      maxArWeight: config.maxArWeight,
      minArWeight: config.minArWeight,
      seed: config.seed,
      initFrom: config.initFrom ?? null,
      weights: 'ema',
    },
  };
}

/** A model folder (the CLI's `--model`): model.safetensors + config.json (the given weights, the EMA) + meta.json. */
export function exportModel(
  modelConfig: ModelConfig,
  weights: Float32Array[],
  dir: string,
  config: TrainConfig,
  data: { classNames: readonly string[] },
  training: TrainingProvenance,
): void {
  writeModelFolder(dir, {
    weights: officialStateDict(trainingEntries(modelConfig), weights),
    config: configToJson(modelConfig),
    meta: modelMeta(config, data.classNames, training),
  });
}

/**
 * A finetune run's checkpoint holds a classifier, whose folder also needs the test accuracy on its data:
 * finetune writes it (`--resume --export`), so this says how. Other state.json problems are readCheckpointState's.
 */
function refuseFinetuneRun(runDir: string, found: string): void {
  let state: { format?: unknown; step?: unknown } | null = null;
  try {
    state = JSON.parse(fs.readFileSync(path.join(found, 'state.json'), 'utf8')) as { format?: unknown; step?: unknown } | null;
  } catch {
    return;
  }
  if (state?.format !== FINETUNE_CHECKPOINT_FORMAT) return;
  const steps = Number.isSafeInteger(state.step) ? ` --steps ${String(state.step)}` : '';
  throw new Error(
    `${runDir} is a causalfusion finetune run (a classifier); write its classifier folder with causalfusion finetune --out ${runDir} --resume${steps} --export DIR`,
  );
}

/**
 * The EMA weights of a run's latest checkpoint as a model folder, without a runtime: for a run
 * still in progress, or one stopped early. Returns the checkpoint's step.
 */
export function exportCheckpoint(runDir: string, exportDir: string): { step: number; wallSeconds: number } {
  const ckptDir = path.join(runDir, 'checkpoint');
  const found = findCheckpoint(ckptDir);
  if (!found) throw new Error(`no training checkpoint in ${ckptDir}; give the --out folder of a training run`);
  refuseFinetuneRun(runDir, found);
  const state = readCheckpointState<TrainConfig>(ckptDir);
  const modelConfig = modelConfigOf(state.config, state.classNames!.length);
  const ema = readSafetensors(path.join(found, 'ema.safetensors')).tensors;
  checkStateDict(modelConfig, ema, `${found}/ema.safetensors`);
  const training: TrainingProvenance = {
    command: `exported from the checkpoint of ${runDir}`,
    steps: state.step,
    wallSeconds: Math.round(state.wallSeconds),
    backend: state.config.backend ?? 'not recorded',
    workers: state.config.workers,
  };
  writeModelFolder(exportDir, { weights: ema, config: configToJson(modelConfig), meta: modelMeta(state.config, state.classNames!, training) });
  return { step: state.step, wallSeconds: state.wallSeconds };
}
