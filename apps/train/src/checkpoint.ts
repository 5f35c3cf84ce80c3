/**
 * Training checkpoints: `<out>/checkpoint/` holds the model (model.safetensors + config.json, a model
 * folder as `saveModel` writes it), the EMA (ema.safetensors), the AdamW moments (optimizer.safetensors),
 * and state.json (step, AdamW step count, RNG state, training config, wall time).
 *
 * Atomic as a whole: everything is written into `checkpoint.tmp/`, then the old folder is moved
 * aside and the new one renamed into place. A crash between the two renames leaves `checkpoint.old/`,
 * which {@link readCheckpoint} falls back to.
 */
import * as fs from 'fs';
import * as path from 'path';
import { makeDirs, readSafetensors, writeFileAtomic, writeSafetensors } from '@causalfusion/safetensors';
import type { RngState } from '@causalfusion/rng';
import { checkStateDict, CONFIG_FILE, configToJson, toOfficialLayout, toTrainingLayout, trainingEntries, WEIGHTS_FILE, type AdamWState, type ModelConfig } from '@causalfusion/config';
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
  /** The model and the EMA in trainingEntries order and training layout. */
  model: Float32Array[];
  ema: Float32Array[];
  /** AdamW's moments, one pair per trainable parameter (training layout). */
  optimizer: AdamWState;
}

/** What a class-model checkpoint holds, as the trainer keeps it (host arrays, training layout). */
export interface CheckpointParts {
  config: ModelConfig;
  model: Float32Array[];
  ema: Float32Array[];
  optimizer: AdamWState;
  state: CheckpointState;
}

/** The official state_dict of parameters held in the training layout. */
export function officialState(config: ModelConfig, arrays: Float32Array[]): Map<string, { shape: number[]; data: Float32Array }> {
  return new Map(trainingEntries(config).map((e, i) => [e.key, { shape: e.officialShape, data: toOfficialLayout(e, arrays[i]) }]));
}

/** A model folder's weights: model.safetensors (official keys and layout, config in its metadata) and config.json. */
export function writeModelFiles(dir: string, config: ModelConfig, arrays: Float32Array[]): void {
  const configJson = configToJson(config);
  writeSafetensors(path.join(dir, WEIGHTS_FILE), officialState(config, arrays), { format: 'pt', config: JSON.stringify(configJson) });
  writeFileAtomic(path.join(dir, CONFIG_FILE), JSON.stringify(configJson, null, 2) + '\n');
}

/**
 * Write a checkpoint folder atomically: `fill` writes everything into `<dir>.tmp/`, then the old folder
 * is moved aside and the new one renamed into place.
 */
export async function writeCheckpointFolder(dir: string, fill: (tmp: string) => Promise<void> | void): Promise<void> {
  const tmp = `${dir}.tmp`;
  const old = `${dir}.old`;
  fs.rmSync(tmp, { recursive: true, force: true });
  makeDirs(tmp);
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

export async function writeCheckpoint(dir: string, parts: CheckpointParts): Promise<void> {
  await writeCheckpointFolder(dir, async (tmp) => {
    writeModelFiles(tmp, parts.config, parts.model);
    writeSafetensors(path.join(tmp, 'ema.safetensors'), officialState(parts.config, parts.ema), { format: 'pt' });
    const trainable = trainingEntries(parts.config).filter((e) => e.trainable);
    writeSafetensors(path.join(tmp, 'optimizer.safetensors'), optimizerTensors(trainable.map((e) => e.key), trainable.map((e) => e.shape), parts.optimizer));
    writeFileAtomic(path.join(tmp, 'state.json'), JSON.stringify({ ...parts.state, adamStepCount: parts.optimizer.stepCount }, null, 2) + '\n');
  });
}

/** Where the newest complete checkpoint is (the folder, or its `.old` copy after a crash), or null. */
export function findCheckpoint(dir: string): string | null {
  for (const d of [dir, `${dir}.old`]) if (fs.existsSync(path.join(d, 'state.json'))) return d;
  return null;
}

/**
 * state.json of a checkpoint folder, checked field by field: a damaged or hand-edited file is an Error
 * naming the file and the field, never a bare SyntaxError or a run that resumes from nonsense.
 */
function readStateFile(found: string): CheckpointState {
  const file = path.join(found, 'state.json');
  let json: unknown;
  try {
    json = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    throw new Error(`${file} cannot be read as JSON (${(e as Error).message.split('\n')[0]}); the checkpoint is damaged: resume from ${found === file ? 'another copy' : 'checkpoint.old if it exists'}, or start a new run`);
  }
  const bad = (field: string, why: string): never => {
    throw new Error(`${file}: ${field} ${why}; the checkpoint is damaged or was edited by hand`);
  };
  if (json === null || typeof json !== 'object' || Array.isArray(json)) bad('the file', 'is not a JSON object');
  const s = json as Record<string, unknown>;
  const count = (k: string) => (Number.isSafeInteger(s[k]) && (s[k] as number) >= 0 ? (s[k] as number) : bad(k, `must be a non-negative integer, got ${JSON.stringify(s[k])}`));
  if (s.format === 'causalfusion-multimodal-train-checkpoint') return s as unknown as CheckpointState; // the caller names the task
  if (s.format !== CHECKPOINT_FORMAT) bad('format', `is ${JSON.stringify(s.format)}, not ${CHECKPOINT_FORMAT}`);
  count('step');
  count('adamStepCount');
  if (!(typeof s.wallSeconds === 'number' && Number.isFinite(s.wallSeconds) && s.wallSeconds >= 0)) bad('wallSeconds', `must be a number of seconds, got ${JSON.stringify(s.wallSeconds)}`);
  const rng = s.rng as { s?: unknown; spare?: unknown } | null;
  const words = rng && Array.isArray(rng.s) && rng.s.length === 4 && rng.s.every((w) => Number.isInteger(w) && w >= 0 && w <= 0xffffffff);
  if (!words || !(rng!.spare === null || (typeof rng!.spare === 'number' && Number.isFinite(rng!.spare)))) bad('rng', 'is not a random generator state (four 32-bit words and a spare normal)');
  if (!Array.isArray(s.classNames) || s.classNames.length === 0 || !s.classNames.every((c) => typeof c === 'string')) bad('classNames', 'must be a list of class names');
  if (s.config === null || typeof s.config !== 'object' || Array.isArray(s.config)) bad('config', 'must be the training config object');
  return s as unknown as CheckpointState;
}

/** Read a checkpoint of a model of `config` (written by either runtime: one format). */
export function readCheckpoint(dir: string, config: ModelConfig): CheckpointContent {
  const found = findCheckpoint(dir);
  if (!found) throw new Error(`no checkpoint in ${dir}; start the run without --resume`);
  const state = readStateFile(found);
  if (state.format !== CHECKPOINT_FORMAT) throw new Error(`${found}/state.json is not a causalfusion training checkpoint`);
  const entries = trainingEntries(config);
  const weights = (file: string) => {
    const tensors = readSafetensors(path.join(found, file)).tensors;
    checkStateDict(config, tensors, `${found}/${file}`);
    return entries.map((e) => toTrainingLayout(e, tensors.get(e.key)!.data));
  };
  const opt = readSafetensors(path.join(found, 'optimizer.safetensors')).tensors;
  const get = (k: string, size: number) => {
    const t = opt.get(k);
    if (!t) throw new Error(`${found}/optimizer.safetensors lacks ${k}; the checkpoint does not match the model`);
    if (t.data.length !== size) throw new Error(`${found}/optimizer.safetensors: ${k} has ${t.data.length} values, the parameter ${size}; the checkpoint does not match the model`);
    for (let i = 0; i < t.data.length; i++) {
      if (!Number.isFinite(t.data[i])) throw new Error(`${found}/optimizer.safetensors: ${k}[${i}] is ${t.data[i]}; the checkpoint is damaged`);
    }
    return t.data;
  };
  const trainable = entries.filter((e) => e.trainable);
  const sizeOf = (e: (typeof entries)[number]) => e.shape.reduce((a, b) => a * b, 1);
  return {
    state,
    model: weights(WEIGHTS_FILE),
    ema: weights('ema.safetensors'),
    optimizer: { stepCount: state.adamStepCount, m: trainable.map((e) => get(`m.${e.key}`, sizeOf(e))), v: trainable.map((e) => get(`v.${e.key}`, sizeOf(e))) },
  };
}

/** Read only state.json (to learn the config of the run before building the model). */
export function readCheckpointState(dir: string): CheckpointState {
  const found = findCheckpoint(dir);
  if (!found) throw new Error(`--resume: no checkpoint in ${dir}; start the run without --resume`);
  const state = readStateFile(found);
  if ((state as { format?: string }).format === 'causalfusion-multimodal-train-checkpoint') {
    throw new Error(`${found} is the checkpoint of a --task multimodal run; add --task multimodal to continue it`);
  }
  return state;
}
