/**
 * The loop both training tasks (class-conditional and multimodal) share around their own step: the
 * CSV log, the progress bar, checkpoints every N steps (with the loss curve), and Ctrl-C / SIGTERM,
 * which finishes the step in flight, saves a checkpoint and stops (a second signal quits at once).
 */
import * as fs from 'fs';
import * as path from 'path';
import { csvLine, LogRow, Progress, writeLossPng } from './report';

/** What one optimisation step reports for the log. */
export interface StepOutcome {
  loss: number;
  gradNorm: number;
  lr: number;
  emaDecay: number;
  /** An extra line for plain (non-terminal) output at log time, e.g. the loss parts. */
  detail?: string;
}

export interface LoopOptions {
  /**
   * The run's config, as far as the loop is concerned: the run folder (log.csv, loss.png), the steps in
   * all, and how often to log and checkpoint.
   */
  run: { out: string; steps: number; logEvery: number; checkpointEvery: number };
  /** The checkpoint folder (for the stop message). */
  checkpointDir: string;
  /** Steps done in earlier sessions, and their training wall time. */
  startStep: number;
  wallBefore: number;
  /** The log so far (rows of earlier sessions); the loop appends to it and to log.csv. */
  rows: LogRow[];
  /** In-place progress bar (default: when stdout is a terminal), else plain lines. */
  tty?: boolean;
  write: (s: string) => void;
  /** The run's first line (written once the signal handlers are in place). */
  banner: string;
  /** Run and apply 0-based step `step` (throw to stop the run, e.g. on a NaN loss). */
  step(step: number): Promise<StepOutcome> | StepOutcome;
  /** Write the checkpoint after `stepsDone` steps; `wallSeconds`: training time of all sessions. */
  save(stepsDone: number, wallSeconds: number): Promise<void>;
  /** After a step is logged and saved (sample grids). */
  after?(stepsDone: number): Promise<void>;
}

export interface LoopResult {
  /** Steps done in all sessions. */
  step: number;
  sessionSteps: number;
  /** The last step's outcome (null when no step ran). */
  last: StepOutcome | null;
  /** Seconds of this session, and of all sessions. */
  sessionSeconds: number;
  wallSeconds: number;
  /** True when a signal stopped the run early (after saving a checkpoint). */
  interrupted: boolean;
  /** The signal that stopped it (SIGINT also when the stop was requested without one). */
  signal?: 'SIGINT' | 'SIGTERM';
}

/** The line a resumed run prints when its checkpoint is already at (or past) --steps. */
export function upToDateMessage(out: string, step: number, steps: number, exportDir: string | null): string {
  return (
    `nothing left to do: the run in ${out} is already at step ${step} (--steps ${steps}); raise --steps above ${step} to train longer` +
    (exportDir ? `, or write its model folder with causalfusion export model --run ${out} --out ${exportDir}` : '') +
    '\n'
  );
}

/** The exit status of a run a signal stopped, as shells report it: 128 + the signal number (SIGINT 130, SIGTERM 143). */
export function signalExitCode(signal: 'SIGINT' | 'SIGTERM' | undefined): number {
  return signal === 'SIGTERM' ? 143 : 130;
}

export async function runTrainingLoop(o: LoopOptions): Promise<LoopResult> {
  const { out, steps, logEvery, checkpointEvery } = o.run;
  const tty = o.tty ?? Boolean(process.stdout.isTTY);
  const csvFile = path.join(out, 'log.csv');
  const progress = new Progress(steps, tty, o.write);
  let stopRequested = false;
  let stopSignal: 'SIGINT' | 'SIGTERM' | undefined;
  const onSignal = (signal?: NodeJS.Signals) => {
    const which = signal === 'SIGTERM' ? 'SIGTERM' : 'SIGINT';
    if (stopRequested) process.exit(signalExitCode(which));
    stopRequested = true;
    stopSignal = which;
    o.write(`\n${signal ?? 'interrupted'}: finishing the current step, then saving a checkpoint (send it again to quit at once)\n`);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  o.write(o.banner);
  const started = Date.now();
  const elapsed = () => (Date.now() - started) / 1000;
  const save = async (stepsDone: number) => {
    await o.save(stepsDone, o.wallBefore + elapsed());
    await writeLossPng(path.join(out, 'loss.png'), o.rows);
  };
  let step = o.startStep;
  let last: StepOutcome | null = null;
  try {
    while (step < steps) {
      last = await o.step(step);
      step++;
      const stepsPerSec = (step - o.startStep) / Math.max(elapsed(), 1e-9);
      const row: LogRow = {
        step,
        loss: last.loss,
        gradNorm: last.gradNorm,
        lr: last.lr,
        emaDecay: last.emaDecay,
        stepsPerSec,
        wallSeconds: o.wallBefore + elapsed(),
      };
      o.rows.push(row);
      fs.appendFileSync(csvFile, csvLine(row) + '\n');
      if (step % logEvery === 0 || step === steps) {
        progress.update(step, last.loss, stepsPerSec);
        if (last.detail && !tty) o.write(`  ${last.detail}\n`);
      }
      if (step % checkpointEvery === 0 || step === steps) await save(step);
      await o.after?.(step);
      if (stopRequested) {
        if (step % checkpointEvery !== 0 && step !== steps) await save(step);
        progress.break();
        o.write(`stopped at step ${step}: checkpoint saved in ${o.checkpointDir}; continue with the same command and --resume\n`);
        break;
      }
    }
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    progress.break();
  }
  return {
    step,
    sessionSteps: step - o.startStep,
    last,
    sessionSeconds: elapsed(),
    wallSeconds: o.wallBefore + elapsed(),
    interrupted: stopRequested,
    ...(stopRequested ? { signal: stopSignal } : {}),
  };
}
