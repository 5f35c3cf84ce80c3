#!/usr/bin/env node
/** `causalfusion-train [flags]` (also `causalfusion train`): parse the flags, train, report. */
import { MULTIMODAL_USAGE, parseTrainArgs, TRAIN_USAGE } from './config';
import { signalExitCode } from './loop';
import { trainMultimodal, type MultimodalTrainResult } from './multimodal';
import { NanLossError, train, TrainResult } from './trainer';

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
  const command = parseTrainArgs(argv);
  if (command.help) {
    console.log(argv.includes('multimodal') ? MULTIMODAL_USAGE : TRAIN_USAGE);
    return null;
  }
  if (command.multimodal) {
    const r = await trainMultimodal({ ...command.multimodal, commandLine });
    if (!r.interrupted && !r.upToDate) {
      console.log(
        `done: step ${r.step}, last loss ${r.loss.toFixed(4)} (text ${r.textLoss.toFixed(4)}, image ${r.imageLoss.toFixed(4)}), ` +
          `${r.stepsPerSec.toFixed(2)} steps/s this session; run folder ${r.config.out}`,
      );
    }
    return r;
  }
  const result = await train({ ...command, commandLine });
  if (result.interrupted || result.upToDate) return result;
  console.log(
    `done: step ${result.step}, last loss ${result.loss.toFixed(4)}, ${result.stepsPerSec.toFixed(2)} steps/s this session; ` +
      `run folder ${result.config.out}`,
  );
  return result;
}

if (require.main === module) {
  runTrainCli(process.argv.slice(2)).then((result) => {
    process.exitCode = trainExitCode(result);
  }, (err: Error) => {
    console.error(`error: ${err.message}`);
    process.exitCode = err instanceof NanLossError ? 1 : 2;
  });
}
