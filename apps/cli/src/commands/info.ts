import { Command } from 'commander';
import { createDiffusion } from '@causalfusion/diffusion';
import { UsageError } from '../errors';
import { PACKAGE_MAP } from '../package-map';

/** `causalfusion info`: the package map and the default sampling schedule. */
export function registerInfo(program: Command): void {
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
}
