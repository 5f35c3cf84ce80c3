import { Command } from 'commander';
import { parseTrainCommand, runTrainCli, TRAIN_USAGE } from '@causalfusion/train';
import { registerTrainingCommand } from './training-command';

/**
 * `causalfusion train [flags]`: runs the training app (@causalfusion/train) with the same flags as
 * `causalfusion-train`. Bad flags are usage errors (exit 2); a NaN loss stops training with exit 1; a run
 * Ctrl-C / SIGTERM stopped (after saving its checkpoint) exits 130 / 143, as shells expect.
 */
export function registerTrain(program: Command): void {
  registerTrainingCommand(program, {
    name: 'train',
    description: 'train a CausalFusion model (apps/train): --out runs/<name> [--preset mnist] [--runtime ort|tfjs] [--resume] [--export dir]; see train --help',
    flagsHelp: 'training flags (causalfusion train --help lists them)',
    usage: TRAIN_USAGE,
    parse: parseTrainCommand,
    run: runTrainCli,
  });
}
