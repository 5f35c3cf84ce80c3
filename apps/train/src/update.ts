/**
 * The end of every training step, the same for every task and runtime: the warmup learning rate, global
 * norm clipping, AdamW and the EMA, on host Float32Arrays (@causalfusion/config), and the
 * one error a step stops a run with.
 */
import { clipGradArrays, updateEmaArrays, type GradientArrays, type HostAdamW } from '@causalfusion/config';

/** The loss became NaN or infinite: the weights of that step were not applied (exit code 1). */
export class NanLossError extends Error {
  override name = 'NanLossError';
}

export interface UpdateConfig {
  /** AdamW's peak learning rate, reached linearly over warmupSteps, then constant. */
  lr: number;
  warmupSteps: number;
  /** Global gradient-norm clip. */
  clipNorm: number;
  emaDecay: number;
  /** EMA warmup: decay min(emaDecay, (1 + step) / (10 + step)), so short runs get a useful EMA. */
  emaWarmup: boolean;
}

/** Learning rate at 0-based step `step`: linear warmup to `lr`, then constant. */
export function lrAt(config: Pick<UpdateConfig, 'lr' | 'warmupSteps'>, step: number): number {
  return config.warmupSteps > 0 ? config.lr * Math.min(1, (step + 1) / config.warmupSteps) : config.lr;
}

/**
 * EMA decay of update number `updates` (1-based). With warmup, min(decay, (1 + n) / (10 + n)): the
 * EMA follows the model closely at first, so a short run's EMA is not stuck at the initial weights.
 */
export function emaDecayAt(config: Pick<UpdateConfig, 'emaDecay' | 'emaWarmup'>, updates: number): number {
  return config.emaWarmup ? Math.min(config.emaDecay, (1 + updates) / (10 + updates)) : config.emaDecay;
}

/** Throws NanLossError (naming the step, the lr and the fix) unless the loss is finite. */
export function checkLoss(loss: number, config: Pick<UpdateConfig, 'lr' | 'warmupSteps'>, k: number, checkpointDir: string): void {
  if (Number.isFinite(loss)) return;
  throw new NanLossError(
    `training stopped: the loss is ${loss} at step ${k + 1} (lr ${lrAt(config, k).toPrecision(3)}); the weights of that step were not applied. ` +
      `Resume from the last checkpoint in ${checkpointDir} with a lower --lr or a longer --warmup (start a new run if there is none).`,
  );
}

/**
 * Step k's update: clip `grads` (in place), AdamW on the trainable parameters at the warmup learning rate,
 * then the EMA of every parameter at its decay for k + 1 updates.
 */
export function applyUpdate(
  optimizer: HostAdamW,
  trainable: Float32Array[],
  grads: GradientArrays,
  ema: { ema: Float32Array[]; model: Float32Array[] },
  config: UpdateConfig,
  k: number,
): { gradNorm: number; lr: number; emaDecay: number } {
  const gradNorm = clipGradArrays(grads, config.clipNorm);
  optimizer.lr = lrAt(config, k);
  optimizer.step(trainable, grads);
  const emaDecay = emaDecayAt(config, k + 1);
  updateEmaArrays(ema.ema, ema.model, emaDecay);
  return { gradNorm, lr: optimizer.lr, emaDecay };
}
