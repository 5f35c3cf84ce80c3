import { Command } from 'commander';
import { NanLossError, signalExitCode } from '@causalfusion/train';
import { UsageError } from '../errors';
import { checkOutDir } from '../outputs';

/** What one training-style command (train, finetune) plugs into the shared wiring. */
export interface TrainingCommandSpec {
  name: string;
  description: string;
  /** The description of the `[flags...]` argument. */
  flagsHelp: string;
  /** Printed for --help / -h. */
  usage: string;
  /** Parse the flags (thrown Errors become usage errors) to check --out and --export first. */
  parse: (flags: string[]) => { config: { out: string }; exportDir: string | null };
  /** Run the command; null after --help. */
  run: (flags: string[]) => Promise<{ interrupted: boolean; signal?: 'SIGINT' | 'SIGTERM' } | null>;
}

/**
 * Register a command that runs one of apps/train's command lines. Bad flags are usage errors (exit 2); a
 * NaN loss stops with exit 1; a run that cannot start (missing model or checkpoint, bad data folder,
 * corrupt image) is a usage error with the first line of its message; a run Ctrl-C / SIGTERM stopped
 * (after saving its checkpoint) exits 130 / 143, as shells expect.
 */
export function registerTrainingCommand(program: Command, spec: TrainingCommandSpec): void {
  program
    .command(spec.name)
    .description(spec.description)
    .helpOption(false)
    .allowUnknownOption()
    .allowExcessArguments()
    .argument('[flags...]', spec.flagsHelp)
    .action(async (flags: string[]) => {
      if (flags.includes('--help') || flags.includes('-h')) {
        console.log(spec.usage);
        return;
      }
      let parsed;
      try {
        parsed = spec.parse(flags);
      } catch (err) {
        throw new UsageError((err as Error).message);
      }
      // where the run and the exported folder go is checked before any data is read
      if (parsed.config.out) checkOutDir(parsed.config.out, '--out');
      if (parsed.exportDir) checkOutDir(parsed.exportDir, '--export');
      let result;
      try {
        result = await spec.run(flags);
      } catch (err) {
        if (err instanceof NanLossError) throw err;
        // a run that cannot start is the user's to fix
        throw new UsageError((err as Error).message.split('\n')[0]);
      }
      process.exitCode = result?.interrupted ? signalExitCode(result.signal) : 0;
    });
}
