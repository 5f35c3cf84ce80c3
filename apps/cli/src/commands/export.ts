import * as path from 'path';
import { Command } from 'commander';
import { exportCheckpoint } from '@causalfusion/train';
import { UsageError } from '../errors';

/**
 * `causalfusion export <format>`: turn what training produced into something the other commands run.
 * `export model` writes a model folder (EMA weights + config.json + meta.json) from a training run's
 * latest checkpoint, so a run in progress or one stopped early can be sampled from.
 */
export function registerExport(program: Command): Command {
  const exportCmd = program.command('export').description('export a training checkpoint as a model folder (export model)');
  exportCmd
    .command('model')
    .description("write a model folder (the EMA weights of a run's latest checkpoint) for sample / edit --model")
    .requiredOption('--run <dir>', 'the training run folder (the --out of causalfusion train)')
    .requiredOption('--out <dir>', 'the model folder to write')
    .action((flags: { run: string; out: string }) => {
      let result;
      try {
        result = exportCheckpoint(flags.run, flags.out);
      } catch (err) {
        throw new UsageError((err as Error).message.split('\n')[0]);
      }
      console.log(`wrote ${path.resolve(flags.out)}: EMA weights at step ${result.step} (${(result.wallSeconds / 3600).toFixed(2)} h of training)`);
    });
  return exportCmd;
}
