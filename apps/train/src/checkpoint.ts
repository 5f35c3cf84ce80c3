/**
 * Training checkpoints: `<out>/checkpoint/` holds the model (model.safetensors + config.json, as
 * `saveModel` writes them), the EMA (ema.safetensors), the AdamW moments (optimizer.safetensors),
 * and state.json (step, AdamW step count, RNG state, training config, wall time).
 *
 * Atomic as a whole: everything is written into `checkpoint.tmp/`, then the old folder is moved
 * aside and the new one renamed into place. A crash between the two renames leaves `checkpoint.old/`,
 * which {@link readCheckpoint} falls back to.
 */
import * as fs from 'fs';
import * as path from 'path';
import { readSafetensors, writeFileAtomic, writeSafetensors } from '@causalfusion/safetensors';
import type { RngState } from '@causalfusion/rng';
import { AdamW, CausalDiffusionModel, saveModel, WEIGHTS_FILE } from '@causalfusion/transformer';
import type { TrainConfig } from './config';

export const CHECKPOINT_FORMAT = 'causalfusion-train-checkpoint';

export interface CheckpointState {
  format: typeof CHECKPOINT_FORMAT;
  /** Optimisation steps done. */
  step: number;
  adamStepCount: number;
  rng: RngState;
  config: TrainConfig;
  classNames: string[];
  /** Training wall time so far (all sessions). */
  wallSeconds: number;
}

export interface CheckpointContent {
  state: CheckpointState;
  model: Map<string, { shape: number[]; data: Float32Array }>;
  ema: Map<string, { shape: number[]; data: Float32Array }>;
  optimizer: { stepCount: number; m: Float32Array[]; v: Float32Array[] };
}

/** The trainable variables' official keys, in `trainableVariables()` order. */
function trainableKeys(model: CausalDiffusionModel): string[] {
  return model.stateEntries().filter((e) => e.variable.trainable).map((e) => e.key);
}

/**
 * Write a checkpoint folder atomically: `fill` writes everything into `<dir>.tmp/`, then the old folder
 * is moved aside and the new one renamed into place.
 */
export async function writeCheckpointFolder(dir: string, fill: (tmp: string) => Promise<void> | void): Promise<void> {
  const tmp = `${dir}.tmp`;
  const old = `${dir}.old`;
  fs.rmSync(tmp, { recursive: true, force: true });
  fs.mkdirSync(tmp, { recursive: true });
  await fill(tmp);
  if (fs.existsSync(dir)) {
    fs.rmSync(old, { recursive: true, force: true });
    fs.renameSync(dir, old);
  }
  fs.renameSync(tmp, dir);
  fs.rmSync(old, { recursive: true, force: true });
}

/** AdamW's moments as `m.<key>` / `v.<key>` tensors (keys and shapes of the optimizer's variables, in order). */
export function optimizerTensors(keys: string[], shapes: number[][], opt: { m: Float32Array[]; v: Float32Array[] }): [string, { shape: number[]; data: Float32Array }][] {
  const tensors: [string, { shape: number[]; data: Float32Array }][] = [];
  keys.forEach((k, i) => {
    tensors.push([`m.${k}`, { shape: shapes[i], data: opt.m[i] }]);
    tensors.push([`v.${k}`, { shape: shapes[i], data: opt.v[i] }]);
  });
  return tensors;
}

export async function writeCheckpoint(
  dir: string,
  parts: { model: CausalDiffusionModel; ema: CausalDiffusionModel; optimizer: AdamW; state: CheckpointState },
): Promise<void> {
  await writeCheckpointFolder(dir, async (tmp) => {
    await saveModel(parts.model, tmp);
    writeSafetensors(path.join(tmp, 'ema.safetensors'), parts.ema.stateDict(), { format: 'pt' });
    const opt = parts.optimizer.getState();
    const shapes = parts.optimizer.variables.map((v) => [...v.shape]);
    writeSafetensors(path.join(tmp, 'optimizer.safetensors'), optimizerTensors(trainableKeys(parts.model), shapes, opt));
    writeFileAtomic(path.join(tmp, 'state.json'), JSON.stringify({ ...parts.state, adamStepCount: opt.stepCount }, null, 2) + '\n');
  });
}

/** Where the newest complete checkpoint is (the folder, or its `.old` copy after a crash), or null. */
export function findCheckpoint(dir: string): string | null {
  for (const d of [dir, `${dir}.old`]) if (fs.existsSync(path.join(d, 'state.json'))) return d;
  return null;
}

export function readCheckpoint(dir: string, model: CausalDiffusionModel): CheckpointContent {
  const found = findCheckpoint(dir);
  if (!found) throw new Error(`no checkpoint in ${dir}; start the run without --resume`);
  const state = JSON.parse(fs.readFileSync(path.join(found, 'state.json'), 'utf8')) as CheckpointState;
  if (state.format !== CHECKPOINT_FORMAT) throw new Error(`${found}/state.json is not a causalfusion training checkpoint`);
  const opt = readSafetensors(path.join(found, 'optimizer.safetensors')).tensors;
  const keys = trainableKeys(model);
  const get = (k: string) => {
    const t = opt.get(k);
    if (!t) throw new Error(`${found}/optimizer.safetensors lacks ${k}; the checkpoint does not match the model`);
    return t.data;
  };
  return {
    state,
    model: readSafetensors(path.join(found, WEIGHTS_FILE)).tensors,
    ema: readSafetensors(path.join(found, 'ema.safetensors')).tensors,
    optimizer: { stepCount: state.adamStepCount, m: keys.map((k) => get(`m.${k}`)), v: keys.map((k) => get(`v.${k}`)) },
  };
}

/** Read only state.json (to learn the config of the run before building the model). */
export function readCheckpointState(dir: string): CheckpointState {
  const found = findCheckpoint(dir);
  if (!found) throw new Error(`--resume: no checkpoint in ${dir}; start the run without --resume`);
  return JSON.parse(fs.readFileSync(path.join(found, 'state.json'), 'utf8')) as CheckpointState;
}
