#!/usr/bin/env node
/** `causalfusion-train [flags]` (also `causalfusion train`): parse the flags, run the task, report. */
import { signalExitCode } from './loop';
import { trainMultimodal, type MultimodalTrainResult } from './multimodal-trainer';
import { TRAIN_USAGE } from './config';
import { MULTIMODAL_USAGE } from './multimodal-config';
import { parseTrainCommand, taskOf } from './task';
import { NanLossError, train, type TrainResult } from './trainer';

/**
 * The exit status of a run: 0 when it finished (or had nothing left to do), and as shells expect for a
 * run a signal stopped after saving its checkpoint: 130 for SIGINT (Ctrl-C), 143 for SIGTERM.
 */
export function trainExitCode(result: TrainResult | MultimodalTrainResult | null): number {
  return result?.interrupted ? signalExitCode(result.signal) : 0;
}

/**
 * Run the training command line. Returns the result, or null after --help. Errors in the flags are
 * thrown as they are (the CLI turns them into one-line usage errors).
 */
export async function runTrainCli(argv: string[], commandLine = `causalfusion train ${argv.join(' ')}`): Promise<TrainResult | MultimodalTrainResult | null> {
  const help = argv.includes('--help') || argv.includes('-h');
  // the multimodal task's help needs no valid flags; the class task's flags are checked first
  if (help && taskOf(argv) === 'multimodal') {
    console.log(MULTIMODAL_USAGE);
    return null;
  }
  const command = parseTrainCommand(argv);
  if (command.task === 'class' && command.help) {
    console.log(TRAIN_USAGE);
    return null;
  }
  switch (command.task) {
    case 'multimodal': {
      const r = await trainMultimodal({ ...command, commandLine });
      if (!r.interrupted && !r.upToDate) {
        console.log(
          `done: step ${r.step}, last loss ${r.loss.toFixed(4)} (text ${r.textLoss.toFixed(4)}, image ${r.imageLoss.toFixed(4)}), ` +
            `${r.stepsPerSec.toFixed(2)} steps/s this session; run folder ${r.config.out}`,
        );
      }
      return r;
    }
    case 'class': {
      const r = await train({ ...command, commandLine });
      if (!r.interrupted && !r.upToDate) {
        console.log(`done: step ${r.step}, last loss ${r.loss.toFixed(4)}, ${r.stepsPerSec.toFixed(2)} steps/s this session; run folder ${r.config.out}`);
      }
      return r;
    }
  }
}

if (require.main === module) {
  runTrainCli(process.argv.slice(2)).then(
    (result) => {
      process.exitCode = trainExitCode(result);
    },
    (err: Error) => {
      console.error(`error: ${err.message}`);
      process.exitCode = err instanceof NanLossError ? 1 : 2;
    },
  );
}
