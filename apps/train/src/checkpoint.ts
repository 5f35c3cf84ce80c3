/**
 * Training checkpoints, one format for every model and runtime: `<out>/checkpoint/` holds a model folder
 * (model.safetensors, config.json, and for the multimodal model tokenizer.json and meta.json: what
 * `writeModelFolder` of @causalfusion/config writes), the EMA (ema.safetensors), the AdamW moments
 * (optimizer.safetensors: `m.<key>` / `v.<key>` in the training layout) and state.json (format, step,
 * AdamW step count, RNG state, the task's training config, wall time).
 *
 * The weights are host arrays in the training layout of a parameter table (`ParamEntry[]`); the files
 * hold the official layout. Atomic as a whole: everything is written into `checkpoint.tmp/`, then the
 * old folder is moved aside and the new one renamed into place. A crash between the two renames leaves
 * `checkpoint.old/`, which {@link readCheckpoint} falls back to.
 */
import * as fs from 'fs';
import * as path from 'path';
import {
  officialStateDict,
  sizeOf,
  trainingArrays,
  WEIGHTS_FILE,
  writeModelFolder,
  type AdamWState,
  type ModelFolderFiles,
  type ParamEntry,
  type StateDict,
} from '@causalfusion/config';
import type { RngState } from '@causalfusion/rng';
import { makeDirs, readSafetensors, writeFileAtomic, writeSafetensors } from '@causalfusion/safetensors';

/** state.json's `format` of each task. */
export const CHECKPOINT_FORMAT = 'causalfusion-train-checkpoint';
export const MULTIMODAL_CHECKPOINT_FORMAT = 'causalfusion-multimodal-train-checkpoint';
/** A `causalfusion finetune` run's (./finetune: its own state.json, read there). */
export const FINETUNE_CHECKPOINT_FORMAT = 'causalfusion-finetune-checkpoint';

/** state.json: what every task records; `config` is the task's training config. */
export interface CheckpointState<C = Record<string, unknown>> {
  format: typeof CHECKPOINT_FORMAT | typeof MULTIMODAL_CHECKPOINT_FORMAT;
  /** Optimisation steps done. */
  step: number;
  adamStepCount: number;
  rng: RngState;
  config: C;
  /** The class task's class names. */
  classNames?: string[];
  /** Training wall time so far (all sessions). */
  wallSeconds: number;
}

/** What a checkpoint is of: the parameter table, the model folder's other files, and the check of a weights file. */
export interface CheckpointModel {
  entries: readonly ParamEntry[];
  /** config.json, and for the multimodal model tokenizer.json and meta.json. */
  folder: Omit<ModelFolderFiles, 'weights'>;
  /** Throws (naming `where`) unless `state` holds this model's weights. */
  check(state: ReadonlyMap<string, { shape: number[]; data: ArrayLike<number> }>, where: string): void;
}

/** A checkpoint's content, as a trainer holds it: host arrays in the training layout. */
export interface CheckpointContent<C = Record<string, unknown>> {
  state: CheckpointState<C>;
  /** The model and the EMA in entries order. */
  model: Float32Array[];
  ema: Float32Array[];
  /** AdamW's moments, one pair per trainable parameter. */
  optimizer: AdamWState;
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

/** AdamW's moments as `m.<key>` / `v.<key>` tensors (keys and shapes of the optimizer's parameters, in order). */
export function optimizerTensors(
  keys: string[],
  shapes: number[][],
  opt: { m: Float32Array[]; v: Float32Array[] },
): [string, { shape: number[]; data: Float32Array }][] {
  const tensors: [string, { shape: number[]; data: Float32Array }][] = [];
  keys.forEach((k, i) => {
    tensors.push([`m.${k}`, { shape: shapes[i], data: opt.m[i] }]);
    tensors.push([`v.${k}`, { shape: shapes[i], data: opt.v[i] }]);
  });
  return tensors;
}

export async function writeCheckpoint<C>(dir: string, of: CheckpointModel, content: CheckpointContent<C>): Promise<void> {
  await writeCheckpointFolder(dir, async (tmp) => {
    writeModelFolder(tmp, { ...of.folder, weights: officialStateDict(of.entries, content.model) });
    writeSafetensors(path.join(tmp, 'ema.safetensors'), officialStateDict(of.entries, content.ema), { format: 'pt' });
    const trainable = of.entries.filter((e) => e.trainable);
    writeSafetensors(
      path.join(tmp, 'optimizer.safetensors'),
      optimizerTensors(
        trainable.map((e) => e.key),
        trainable.map((e) => e.shape),
        content.optimizer,
      ),
    );
    writeFileAtomic(path.join(tmp, 'state.json'), JSON.stringify({ ...content.state, adamStepCount: content.optimizer.stepCount }, null, 2) + '\n');
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
    throw new Error(
      `${file} cannot be read as JSON (${(e as Error).message.split('\n')[0]}); the checkpoint is damaged: resume from ${found === file ? 'another copy' : 'checkpoint.old if it exists'}, or start a new run`,
    );
  }
  const bad = (field: string, why: string): never => {
    throw new Error(`${file}: ${field} ${why}; the checkpoint is damaged or was edited by hand`);
  };
  if (json === null || typeof json !== 'object' || Array.isArray(json)) bad('the file', 'is not a JSON object');
  const s = json as Record<string, unknown>;
  const count = (k: string) =>
    Number.isSafeInteger(s[k]) && (s[k] as number) >= 0 ? (s[k] as number) : bad(k, `must be a non-negative integer, got ${JSON.stringify(s[k])}`);
  if (s.format !== CHECKPOINT_FORMAT && s.format !== MULTIMODAL_CHECKPOINT_FORMAT) bad('format', `is ${JSON.stringify(s.format)}, not ${CHECKPOINT_FORMAT}`);
  count('step');
  count('adamStepCount');
  if (!(typeof s.wallSeconds === 'number' && Number.isFinite(s.wallSeconds) && s.wallSeconds >= 0))
    bad('wallSeconds', `must be a number of seconds, got ${JSON.stringify(s.wallSeconds)}`);
  const rng = s.rng as { s?: unknown; spare?: unknown } | null;
  const words = rng && Array.isArray(rng.s) && rng.s.length === 4 && rng.s.every((w) => Number.isInteger(w) && w >= 0 && w <= 0xffffffff);
  if (!words || !(rng!.spare === null || (typeof rng!.spare === 'number' && Number.isFinite(rng!.spare))))
    bad('rng', 'is not a random generator state (four 32-bit words and a spare normal)');
  if (s.format === CHECKPOINT_FORMAT && (!Array.isArray(s.classNames) || s.classNames.length === 0 || !s.classNames.every((c) => typeof c === 'string'))) {
    bad('classNames', 'must be a list of class names');
  }
  if (s.config === null || typeof s.config !== 'object' || Array.isArray(s.config)) bad('config', 'must be the training config object');
  return s as unknown as CheckpointState;
}

/**
 * Read only state.json (to learn the config of the run before building the model), checked; `format` is
 * the task's, and a checkpoint of the other task is an Error that names the `--task` to give.
 */
export function readCheckpointState<C = Record<string, unknown>>(dir: string, format: CheckpointState['format'] = CHECKPOINT_FORMAT): CheckpointState<C> {
  const found = findCheckpoint(dir);
  if (!found) throw new Error(`--resume: no checkpoint in ${dir}; start the run without --resume`);
  const state = readStateFile(found);
  if (state.format !== format) {
    throw new Error(
      state.format === MULTIMODAL_CHECKPOINT_FORMAT
        ? `${found} is the checkpoint of a --task multimodal run; add --task multimodal to continue it`
        : `--resume: ${found} is not the checkpoint of a --task multimodal run; drop --task multimodal to continue a class-conditional run`,
    );
  }
  return state as CheckpointState<C>;
}

/** Read a checkpoint of the model `of` (written by either runtime: one format); `format` is the task's. */
export function readCheckpoint<C = Record<string, unknown>>(
  dir: string,
  of: CheckpointModel,
  format: CheckpointState['format'] = CHECKPOINT_FORMAT,
): CheckpointContent<C> {
  const state = readCheckpointState<C>(dir, format);
  const found = findCheckpoint(dir)!;
  const weights = (file: string) => {
    const tensors: StateDict = readSafetensors(path.join(found, file)).tensors;
    of.check(tensors, `${found}/${file}`);
    return trainingArrays(of.entries, tensors);
  };
  const opt = readSafetensors(path.join(found, 'optimizer.safetensors')).tensors;
  const get = (k: string, size: number) => {
    const t = opt.get(k);
    if (!t) throw new Error(`${found}/optimizer.safetensors lacks ${k}; the checkpoint does not match the model`);
    if (t.data.length !== size)
      throw new Error(`${found}/optimizer.safetensors: ${k} has ${t.data.length} values, the parameter ${size}; the checkpoint does not match the model`);
    for (let i = 0; i < t.data.length; i++) {
      if (!Number.isFinite(t.data[i])) throw new Error(`${found}/optimizer.safetensors: ${k}[${i}] is ${t.data[i]}; the checkpoint is damaged`);
    }
    return t.data;
  };
  const trainable = of.entries.filter((e) => e.trainable);
  return {
    state,
    model: weights(WEIGHTS_FILE),
    ema: weights('ema.safetensors'),
    optimizer: {
      stepCount: state.adamStepCount,
      m: trainable.map((e) => get(`m.${e.key}`, sizeOf(e.shape))),
      v: trainable.map((e) => get(`v.${e.key}`, sizeOf(e.shape))),
    },
  };
}
