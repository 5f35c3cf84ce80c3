import * as path from 'path';
import { Command } from 'commander';
import { makeDirs, writeFileAtomic, writeSafetensors, type NamedTensor } from '@causalfusion/safetensors';
import { configToJson, officialShapes } from '@causalfusion/config';
import { CONFIG_FILE, WEIGHTS_FILE } from '@causalfusion/config';
import { describeGeometry, officialMeta, tokenizerMetaFor } from '../model-folder';
import { META_FILE } from '@causalfusion/config';
import { describeWeights, parseWeightsFlag, readOfficialCheckpoint } from '../official';
import { checkOutDir } from '../outputs';

interface ConvertFlags {
  from: string;
  out: string;
  weights?: string;
  config?: string;
  tokenizer?: string;
}

/**
 * `causalfusion convert`: an official PyTorch checkpoint (train.py's `{"model", "ema", "opt", "args", ...}`
 * or a bare state_dict; float32, float16 or bfloat16) -> a model folder (model.safetensors with the official
 * keys in float32, config.json, meta.json) that sample / edit / info / export take. No Python: the pickle is
 * read by @causalfusion/pt, which refuses anything but what a state_dict checkpoint holds and never runs it.
 */
export function registerConvert(program: Command): void {
  program
    .command('convert')
    .description(
      'convert an official PyTorch checkpoint (.pt, as train.py saves it, or a bare state_dict) into a model folder, without Python and without running the pickle',
    )
    .requiredOption('--from <ckpt.pt>', "the checkpoint (torch.save's zip format, torch >= 1.6)")
    .requiredOption('--out <dir>', 'the model folder to write (model.safetensors, config.json, meta.json)')
    .option('--weights <ema|model>', "which weights of train.py's checkpoint: ema (what sample.py uses) or model; a bare state_dict is taken whole", 'ema')
    .option(
      '--config <config.json>',
      "the model config in the official argument names (needed unless the checkpoint's args name CausalFusion-L, -XL or -H; wins over the args)",
    )
    .option(
      '--tokenizer <pixel|vae:DIR>',
      "record the model's VAE folder (vae:DIR, from `causalfusion vae init`), or pixel for a model of 1- or 3-channel pixels; default: none recorded (give it to sample / edit with --tokenizer)",
    )
    .action((flags: ConvertFlags) => {
      // everything is checked before anything is written: flags, the output folder, the file, the config, the weights
      const which = parseWeightsFlag(flags.weights);
      checkOutDir(flags.out, '--out');
      const ckpt = readOfficialCheckpoint(flags.from, { weights: which, configFile: flags.config, mode: 'convert', flag: '--from' });
      const { config } = ckpt;
      const tokenizer = flags.tokenizer === undefined ? undefined : tokenizerMetaFor(flags.tokenizer, config, ckpt.file);
      const command = ['causalfusion convert --from', flags.from, '--out', flags.out, '--weights', which]
        .concat(flags.config ? ['--config', flags.config] : [], flags.tokenizer ? ['--tokenizer', flags.tokenizer] : [])
        .join(' ');
      const meta = officialMeta(
        config,
        {
          command,
          source: ckpt.file,
          weights: describeWeights(ckpt),
          config: ckpt.configSource,
          ...(ckpt.trainSteps !== null ? { steps: ckpt.trainSteps } : {}),
          ...(ckpt.args ? { args: ckpt.args } : {}),
        },
        tokenizer,
      );
      const configJson = configToJson(config);
      // the official state_dict order; float32 (float16 and bfloat16 weights are exact in float32)
      const ordered = [...officialShapes(config).keys()].map((k): [string, NamedTensor] => [k, ckpt.weights.get(k)!]);
      makeDirs(flags.out);
      writeSafetensors(path.join(flags.out, WEIGHTS_FILE), ordered, { format: 'pt', config: JSON.stringify(configJson) });
      writeFileAtomic(path.join(flags.out, CONFIG_FILE), JSON.stringify(configJson, null, 2) + '\n');
      writeFileAtomic(path.join(flags.out, META_FILE), JSON.stringify(meta, null, 2) + '\n');
      const params = ordered.reduce((a, [, t]) => a + t.data.length, 0);
      const vae =
        meta.tokenizer.kind === 'vae'
          ? `VAE ${meta.tokenizer.dir}`
          : meta.tokenizer.kind === 'pixel'
            ? 'pixel tokens'
            : 'no VAE recorded (give it to sample / edit with --tokenizer vae:DIR)';
      console.log(
        `wrote ${path.resolve(flags.out)}: ${describeWeights(ckpt)} of ${flags.from}, ${ordered.length} tensors, ` +
          `${params.toLocaleString('en-US')} parameters; ${describeGeometry(config)}; config from ${ckpt.configSource}; ${vae}`,
      );
    });
}
