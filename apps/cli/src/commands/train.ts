import { Command } from 'commander';
import { NanLossError, parseTrainCommand, runTrainCli, trainExitCode, TRAIN_USAGE } from '@causalfusion/train';
import { UsageError } from '../errors';
import { checkOutDir } from '../outputs';

/**
 * `causalfusion train [flags]`: runs the training app (@causalfusion/train) with the same flags as
 * `causalfusion-train`. Bad flags are usage errors (exit 2); a NaN loss stops training with exit 1; a run
 * Ctrl-C / SIGTERM stopped (after saving its checkpoint) exits 130 / 143, as shells expect.
 */
export function registerTrain(program: Command): void {
  program
    .command('train')
    .description('train a CausalFusion model (apps/train): --out runs/<name> [--preset mnist] [--runtime ort|tfjs] [--resume] [--export dir]; see train --help')
    .helpOption(false)
    .allowUnknownOption()
    .allowExcessArguments()
    .argument('[flags...]', 'training flags (causalfusion train --help lists them)')
    .action(async (flags: string[]) => {
      if (flags.includes('--help') || flags.includes('-h')) {
        console.log(TRAIN_USAGE);
        return;
      }
      let parsed;
      try {
        parsed = parseTrainCommand(flags);
      } catch (err) {
        throw new UsageError((err as Error).message);
      }
      // where the run and the exported model go is checked before any data is read
      if (parsed.config.out) checkOutDir(parsed.config.out, '--out');
      if (parsed.exportDir) checkOutDir(parsed.exportDir, '--export');
      let result;
      try {
        result = await runTrainCli(flags);
      } catch (err) {
        if (err instanceof NanLossError) throw err;
        // a run that cannot start (missing checkpoint, bad data folder, corrupt image) is the user's to fix
        throw new UsageError((err as Error).message.split('\n')[0]);
      }
      process.exitCode = trainExitCode(result);
    });
}
