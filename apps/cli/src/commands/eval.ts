import { Command } from 'commander';
import { registerEvalCider } from './eval-cider';
import { registerEvalFid } from './eval-fid';

/** `causalfusion eval <metric>`: each metric registers its own sub-command here. */
export function registerEval(program: Command): void {
  const evalCmd = program.command('eval').description('evaluate samples: FID, CIDEr / BLEU');
  void evalCmd; // sub-commands are added below, one line each
  registerEvalCider(evalCmd);
  registerEvalFid(evalCmd);
}
