/**
 * What every task's run shares around its own model and data: the settings of the optimizer, the EMA, the
 * runtime and the run folder (`RunConfig`), and the state a step updates (`RunState`: the weights, their
 * EMA and AdamW's moments as host arrays, the RNG, the log), fresh from the seed or from the checkpoint.
 */
import * as path from 'path';
import { HostAdamW, initialWeights, sizeOf, toTrainingLayout, type ParamEntry } from '@causalfusion/config';
import { createRng, Rng } from '@causalfusion/rng';
import { makeDirs, readSafetensors } from '@causalfusion/safetensors';
import { readCheckpoint, writeCheckpoint, type CheckpointModel, type CheckpointState } from './checkpoint';
import { initWeightsFile } from './flags';
import { readCsv, writeCsv, type LogRow } from './report';
import type { UpdateConfig } from './update';

/** The settings of a run that do not depend on the task. */
export interface RunConfig extends UpdateConfig {
  /** AdamW's betas and weight decay (its learning rate: `lr`, warmed up over `warmupSteps`). */
  beta1: number;
  beta2: number;
  weightDecay: number;
  seed: number;
  /**
   * Where the loss and gradients are computed (./runtime): `ort` (the training step as ONNX graphs on
   * onnxruntime-node, with `threads` intra-op threads) or `tfjs` (the tfjs model; the class task runs
   * data-parallel over `workers` replicas). One checkpoint format: a run resumes on either.
   */
  runtime: 'ort' | 'tfjs';
  threads: number;
  workers: number;
  /** tfjs backend; default: the fastest installed. */
  backend?: 'tensorflow' | 'wasm' | 'cpu';
  /** Run folder: checkpoint/, log.csv, loss.png. */
  out: string;
  /** Steps in all (raise it with --resume to train longer), and how often to checkpoint and log. */
  steps: number;
  checkpointEvery: number;
  logEvery: number;
  /**
   * Start from the tensors of this model folder (or .safetensors file) whose names and shapes match this
   * model's, the rest fresh from `seed`: e.g. a multimodal model's image path from a class model.
   */
  initFrom?: string;
}

/** What a step reads and the update writes, in the parameter table's order and training layout. */
export interface RunState {
  model: Float32Array[];
  ema: Float32Array[];
  optimizer: HostAdamW;
  /** The model's trainable arrays, in the optimizer's order. */
  trainable: Float32Array[];
  rng: Rng;
  /** Steps done, training wall time so far, and the log rows up to the step. */
  step: number;
  wallBefore: number;
  rows: LogRow[];
  /** What --init-from copied (a fresh run that gave it), for the banner. */
  warmStart: WarmStart | null;
}

/** The tensors a warm start took from `from`, and those it left fresh because their shapes differ. */
export interface WarmStart {
  from: string;
  copied: string[];
  otherShape: string[];
  total: number;
}

/**
 * Overwrite the arrays of `model` (training layout, entries order) whose official key and shape `from`
 * holds too. The transformer blocks must all be there with their shapes (the body is what a warm start
 * is for); other tensors of another shape (a class embedding of another class count) stay fresh.
 */
export function warmStart(model: Float32Array[], entries: readonly ParamEntry[], from: string): WarmStart {
  const { tensors } = readSafetensors(initWeightsFile(from));
  const copied: string[] = [];
  const otherShape: string[] = [];
  entries.forEach((e, i) => {
    const t = tensors.get(e.key);
    const same = t !== undefined && t.shape.join(',') === e.officialShape.join(',');
    if (!same && e.key.startsWith('blocks.')) {
      const has = t ? `[${t.shape.join(', ')}]` : 'none';
      throw new Error(
        `--init-from ${from}: its transformer blocks do not match this model's (${e.key}: ${has} there, [${e.officialShape.join(', ')}] here); ` +
          'give a model of the same width, depth and MLP ratio',
      );
    }
    if (!t) return;
    if (!same) return void otherShape.push(e.key);
    model[i] = toTrainingLayout(e, t.data);
    copied.push(e.key);
  });
  return { from, copied, otherShape, total: entries.length };
}

/** One line for the banner: how many tensors came from where, by top-level module. */
export function describeWarmStart(w: WarmStart): string {
  const modules = [...new Set(w.copied.map((k) => k.split('.')[0]))].join(', ');
  const kept = w.otherShape.length ? `; kept fresh (other shape): ${w.otherShape.join(', ')}` : '';
  if (w.copied.length === w.total) return `initialised all ${w.total} tensors from ${w.from}\n`;
  return `initialised ${w.copied.length} of ${w.total} tensors from ${w.from} (${modules}); the rest fresh${kept}\n`;
}

/**
 * The state of a run: the initial weights of `seed` (the same on every runtime; those --init-from holds
 * taken from it) and their copy as the EMA, a fresh AdamW and RNG; or, with `resume`, all of it from the checkpoint (the log cut back to its step).
 * log.csv is (re)written either way.
 */
export function openRun(config: RunConfig, of: CheckpointModel, resume: boolean, format: CheckpointState['format']): RunState {
  const trainableIndex = of.entries.map((e, i) => (e.trainable ? i : -1)).filter((i) => i >= 0);
  const optimizer = new HostAdamW(
    trainableIndex.map((i) => sizeOf(of.entries[i].shape)),
    {
      lr: config.lr,
      beta1: config.beta1,
      beta2: config.beta2,
      weightDecay: config.weightDecay,
    },
  );
  const csvFile = path.join(config.out, 'log.csv');
  let state: Omit<RunState, 'optimizer' | 'trainable'>;
  if (resume) {
    const ckpt = readCheckpoint(path.join(config.out, 'checkpoint'), of, format);
    optimizer.setState(ckpt.optimizer);
    const step = ckpt.state.step;
    // rows logged after the checkpoint are dropped
    state = {
      model: ckpt.model,
      ema: ckpt.ema,
      rng: Rng.fromState(ckpt.state.rng),
      step,
      wallBefore: ckpt.state.wallSeconds,
      rows: readCsv(csvFile, step),
      warmStart: null,
    };
  } else {
    const model = initialWeights(of.entries, config.seed);
    const warm = config.initFrom ? warmStart(model, of.entries, config.initFrom) : null;
    state = { model, ema: model.map((a) => a.slice()), rng: createRng(config.seed), step: 0, wallBefore: 0, rows: [], warmStart: warm };
  }
  makeDirs(config.out);
  writeCsv(csvFile, state.rows);
  return { ...state, optimizer, trainable: trainableIndex.map((i) => state.model[i]) };
}

/**
 * Write the run's checkpoint after `stepsDone` steps of `wallSeconds` (all sessions): its weights, EMA and
 * AdamW, and state.json with the RNG, the task's training config and `extra` fields (the class names).
 */
export function saveRun<C extends RunConfig>(
  run: RunState,
  of: CheckpointModel,
  config: C,
  format: CheckpointState['format'],
  stepsDone: number,
  wallSeconds: number,
  extra: Pick<CheckpointState, 'classNames'> = {},
): Promise<void> {
  return writeCheckpoint(path.join(config.out, 'checkpoint'), of, {
    model: run.model,
    ema: run.ema,
    optimizer: run.optimizer.getState(),
    state: { format, step: stepsDone, adamStepCount: run.optimizer.stepCount, rng: run.rng.getState(), config, wallSeconds, ...extra },
  });
}
