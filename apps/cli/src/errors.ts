import { Command, CommanderError } from 'commander';
import { OutputPathError } from '@causalfusion/safetensors';

/** An error the user can fix (bad flag, missing file, wrong shape): printed as one line, exit code 2. */
export class UsageError extends Error {
  override name = 'UsageError';
}

/**
 * Run a program. Errors become one line on stderr: `error: <message>`. Problems with the input
 * (UsageError, the RangeError/TypeError our packages throw for bad options, and an OutputPathError: an
 * output folder or file that cannot be created or written) exit with 2, anything else with 1. Set CAUSALFUSION_DEBUG=1 to see the stack trace.
 */
export async function runMain(program: Command, argv: string[]): Promise<void> {
  try {
    await program.parseAsync(argv);
  } catch (e) {
    if (e instanceof CommanderError) {
      // commander has already printed its message (or the help / version text, which exit 0).
      process.exitCode = e.exitCode === 0 ? 0 : 2;
      return;
    }
    const err = e instanceof Error ? e : new Error(String(e));
    console.error(`error: ${err.message}`);
    if (process.env.CAUSALFUSION_DEBUG) console.error(err.stack);
    const isInputProblem = err instanceof UsageError || err instanceof RangeError || err instanceof TypeError || err instanceof OutputPathError;
    process.exitCode = isInputProblem ? 2 : 1;
  }
}
