#!/usr/bin/env node
/** `causalfusion-train [flags]` (also `causalfusion train`): parse the flags, train, report. */
import { parseTrainArgs, TRAIN_USAGE } from './config';
import { NanLossError, train, TrainResult } from './trainer';

/**
 * Run the training command line. Returns the result, or null after --help. Errors in the flags are
 * thrown as they are (the CLI turns them into one-line usage errors).
 */
export async function runTrainCli(argv: string[], commandLine = `causalfusion train ${argv.join(' ')}`): Promise<TrainResult | null> {
  const command = parseTrainArgs(argv);
  if (command.help) {
    console.log(TRAIN_USAGE);
    return null;
  }
  const result = await train({ ...command, commandLine });
  if (result.interrupted) return result;
  console.log(
    `done: step ${result.step}, last loss ${result.loss.toFixed(4)}, ${result.stepsPerSec.toFixed(2)} steps/s this session; ` +
      `run folder ${result.config.out}`,
  );
  return result;
}

if (require.main === module) {
  runTrainCli(process.argv.slice(2)).catch((err: Error) => {
    console.error(`error: ${err.message}`);
    process.exitCode = err instanceof NanLossError ? 1 : 2;
  });
}
