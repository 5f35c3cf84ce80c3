import { Command } from 'commander';
import { registerEvalCider } from './eval-cider';
import { registerEvalFid } from './eval-fid';
import { registerEvalMerge } from './eval-merge';

/** `causalfusion eval <metric>`: each metric registers its own sub-command here. */
export function registerEval(program: Command): void {
  const evalCmd = program.command('eval').description('evaluate samples: FID (whole, or sharded and merged), CIDEr / BLEU');
  void evalCmd; // sub-commands are added below, one line each
  registerEvalCider(evalCmd);
  registerEvalFid(evalCmd);
  registerEvalMerge(evalCmd);
}
