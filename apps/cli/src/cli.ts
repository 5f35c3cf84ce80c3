#!/usr/bin/env node
/**
 * The `causalfusion` command. Each sub-command lives in `commands/` and composes the packages; none
 * holds model logic itself. Errors a user can fix are one line on stderr with exit code 2.
 */
import { Command } from 'commander';
import { runMain } from './errors';
import { registerEval } from './commands/eval';
import { registerInfo } from './commands/info';
import { registerTrain } from './commands/train';
import { registerSample } from './commands/sample';
import { registerEdit } from './commands/edit';
import { registerExport } from './commands/export';
import { registerConvert } from './commands/convert';
import { registerVae } from './commands/vae';
import { registerGenerate } from './commands/generate';
import { registerCaption } from './commands/caption';
import { registerServe } from './commands/serve';

export function buildProgram(): Command {
  const program = new Command();
  program
    .name('causalfusion')
    .description('CausalFusion (Deng et al., arXiv 2412.12095) in TypeScript')
    .version(require('../package.json').version)
    .exitOverride();
  registerSample(program);
  registerEdit(program);
  registerInfo(program);
  registerEval(program);
  registerTrain(program);
  registerExport(program);
  registerConvert(program);
  registerVae(program);
  registerGenerate(program);
  registerCaption(program);
  registerServe(program);
  return program;
}

if (require.main === module) runMain(buildProgram(), process.argv);
