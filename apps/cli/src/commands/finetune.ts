import { Command } from 'commander';
import { FINETUNE_USAGE, NanLossError, parseFinetuneArgs, runFinetuneCli, signalExitCode } from '@causalfusion/train';
import { UsageError } from '../errors';
import { checkOutDir } from '../outputs';

/**
 * `causalfusion finetune --task classify --model DIR --data ... --out DIR [--probe] [--labels N]`: fine-tunes
 * a generative model's transformer as an image classifier (apps/train's finetune task). Bad flags, a
 * missing model or unreadable data are usage errors (exit 2); a NaN loss stops with exit 1; Ctrl-C /
 * SIGTERM saves a checkpoint and exits 130 / 143, as `causalfusion train` does.
 */
export function registerFinetune(program: Command): void {
  program
    .command('finetune')
    .description(
      'fine-tune a trained model as an image classifier: --task classify --model DIR --data mnist|fashion-mnist|DIR --labels N --out DIR [--probe] [--export DIR]; see finetune --help',
    )
    .helpOption(false)
    .allowUnknownOption()
    .allowExcessArguments()
    .argument('[flags...]', 'fine-tuning flags (causalfusion finetune --help lists them)')
    .action(async (flags: string[]) => {
      if (flags.includes('--help') || flags.includes('-h')) {
        console.log(FINETUNE_USAGE);
        return;
      }
      let parsed;
      try {
        parsed = parseFinetuneArgs(flags);
      } catch (err) {
        throw new UsageError((err as Error).message);
      }
      // where the run and the classifier go is checked before any data is read
      if (parsed.config.out) checkOutDir(parsed.config.out, '--out');
      if (parsed.exportDir) checkOutDir(parsed.exportDir, '--export');
      let result;
      try {
        result = await runFinetuneCli(flags);
      } catch (err) {
        if (err instanceof NanLossError) throw err;
        // a run that cannot start (missing model or checkpoint, bad data folder) is the user's to fix
        throw new UsageError((err as Error).message.split('\n')[0]);
      }
      process.exitCode = result?.interrupted ? signalExitCode(result.signal) : 0;
    });
}
