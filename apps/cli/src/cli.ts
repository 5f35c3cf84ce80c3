#!/usr/bin/env node
/**
 * The `causalfusion` command. Each sub-command composes the packages; none holds model logic itself.
 * Errors a user can fix are printed as one line (exit code 2), never as a stack trace.
 */
import { Command } from 'commander';
import { createDiffusion } from '@causalfusion/diffusion';
import { UsageError, runMain } from './errors';
import { PACKAGE_MAP } from './package-map';

export function buildProgram(): Command {
  const program = new Command();
  program
    .name('causalfusion')
    .description('CausalFusion (Deng et al., arXiv 2412.12095) in TypeScript')
    .version(require('../package.json').version)
    .exitOverride();

  program
    .command('info')
    .description('print the packages of causalfusion-ts and the default diffusion schedule')
    .option('--respacing <spec>', 'respacing of the sampling schedule to summarise', '250')
    .action((opts: { respacing: string }) => {
      let diffusion;
      try {
        diffusion = createDiffusion({ steps: 1000, schedule: 'linear', respacing: opts.respacing });
      } catch (e) {
        throw new UsageError(`--respacing: ${(e as Error).message}`);
      }
      console.log('causalfusion-ts: CausalFusion in TypeScript\n');
      console.log('packages and apps:');
      const width = Math.max(...PACKAGE_MAP.map((p) => p.name.length));
      for (const p of PACKAGE_MAP) console.log(`  ${p.name.padEnd(width)}  ${p.status.padEnd(7)}  ${p.summary}`);
      const map = diffusion.timestepMap;
      console.log(
        `\nsampling schedule: linear betas, 1000 steps respaced to ${diffusion.numTimesteps} ` +
          `(model timesteps ${map[map.length - 1]}, ${map[map.length - 2] ?? '-'}, ..., ${map[0]})`,
      );
    });
  return program;
}

if (require.main === module) runMain(buildProgram(), process.argv);
