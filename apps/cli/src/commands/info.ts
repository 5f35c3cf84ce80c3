import * as fs from 'fs';
import * as path from 'path';
import { Command } from 'commander';
import { createDiffusion } from '@causalfusion/diffusion';
import type { BackendName } from '@causalfusion/backend/names';
import { configToJson } from '@causalfusion/config';
import { UsageError } from '../errors';
import { DEFAULT_MODEL_DIR, describeGeometry, readModelFolder, TRAIN_HINT, type ModelFolder } from '../model-folder';
import { loadWeights, parseBackend } from '../runtime-flags';
import { PACKAGE_MAP } from '../package-map';

/** A model folder in detail: where it is, what it was trained on and how, its config and size. */
async function printModel(folder: ModelFolder, requested: BackendName | undefined): Promise<void> {
  const { model, backend } = await loadWeights(folder, requested);
  const params = model.numParams();
  model.dispose();
  const { meta, config } = folder;
  const what = folder.isDefault ? ' (the default model shipped with the CLI)' : folder.weights ? ' (a PyTorch checkpoint, read in memory)' : '';
  console.log(`model: ${folder.dir}${what}`);
  console.log(`  dataset:    ${meta.dataset}, ${meta.classNames.length} classes: ${meta.classNames.join(', ')}`);
  const t = meta.tokenizer;
  const tokenizer =
    t.kind === 'vae'
      ? `vae ${folder.vaeDir ?? t.dir}`
      : t.kind === 'latent'
        ? 'latent, VAE not recorded (give it to sample / edit with --tokenizer vae:DIR)'
        : t.kind;
  console.log(`  tokenizer:  ${tokenizer}, ${describeGeometry(config)}`);
  const cfg = Object.entries(configToJson(config))
    .map(([k, v]) => `${k} ${v}`)
    .join(', ');
  console.log(`  config:     ${cfg}`);
  console.log(`  parameters: ${params.toLocaleString('en-US')} (${((params * 4) / 1e6).toFixed(1)} MB as float32)`);
  console.log(`  backend:    ${backend}`);
  // Where the weights came from: whatever the training app recorded in meta.json.
  const training = meta.training ?? {};
  if (Object.keys(training).length === 0) console.log('  training:   not recorded in meta.json');
  for (const [k, v] of Object.entries(training)) console.log(`  training.${k}: ${typeof v === 'string' ? v : JSON.stringify(v)}`);
}

/** `causalfusion info`: the package map and the default sampling schedule. */
export function registerInfo(program: Command): void {
  program
    .command('info')
    .description('print the packages of causalfusion-ts, the default diffusion schedule and a model (--model)')
    .option('--respacing <spec>', 'respacing of the sampling schedule to summarise', '250')
    .option(
      '--model [dir|ckpt.pt]',
      'also describe a model folder or an official PyTorch checkpoint (config, parameter count, backend, training); no dir = the default model',
    )
    .option('--backend <name>', 'tfjs backend to load the model on: tensorflow, wasm or cpu')
    .action(async (opts: { respacing: string; model?: string | true; backend?: string }) => {
      let diffusion;
      try {
        diffusion = createDiffusion({ steps: 1000, schedule: 'linear', respacing: opts.respacing });
      } catch (e) {
        throw new UsageError(`--respacing: ${(e as Error).message}`);
      }
      // Read the model's files before printing anything, so a bad folder is a one-line error.
      const folder = opts.model === undefined ? null : readModelFolder(opts.model === true ? undefined : opts.model, undefined, { needsTokenizer: false });
      const backend = parseBackend(opts.backend);
      console.log('causalfusion-ts: CausalFusion in TypeScript\n');
      console.log('packages and apps:');
      const width = Math.max(...PACKAGE_MAP.map((p) => p.name.length));
      for (const p of PACKAGE_MAP) console.log(`  ${p.name.padEnd(width)}  ${p.status.padEnd(7)}  ${p.summary}`);
      const map = diffusion.timestepMap;
      console.log(
        `\nsampling schedule: linear betas, 1000 steps respaced to ${diffusion.numTimesteps} ` +
          `(model timesteps ${map[map.length - 1]}, ${map[map.length - 2] ?? '-'}, ..., ${map[0]})`,
      );
      console.log('');
      if (folder) await printModel(folder, backend);
      else if (fs.existsSync(path.join(DEFAULT_MODEL_DIR, 'meta.json')))
        console.log(`default model: ${DEFAULT_MODEL_DIR} (details: causalfusion info --model)`);
      else console.log(`default model: not trained yet (${DEFAULT_MODEL_DIR}); train it with \`${TRAIN_HINT}\``);
    });
}
