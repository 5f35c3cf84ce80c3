import * as path from 'path';
import { Command } from 'commander';
import { exportOnnx, readModelFolder as readWeights } from '@causalfusion/onnx';
import { copyFileAtomic, OutputPathError, writeFileAtomic, writeSafetensors, type NamedTensor } from '@causalfusion/safetensors';
import { configToJson, makeConfig, officialShapes, type ModelConfig } from '@causalfusion/config';
import { exportCheckpoint } from '@causalfusion/train';
import { UsageError } from '../errors';
import { META_FILE } from '@causalfusion/config';
import { readModelFolder } from '../model-folder';
import { OFFICIAL_PRESETS } from '../official';
import { checkOutDir, checkOutFile } from '../outputs';

/**
 * `causalfusion export <format>`: turn what training produced into something the other commands run.
 * `export model` writes a model folder (EMA weights + config.json + meta.json) from a training run's
 * latest checkpoint, so a run in progress or one stopped early can be sampled from. `export onnx` writes a
 * model's ONNX graphs (cond tokens, clean-token push, eps over the KV cache) for onnxruntime anywhere.
 * `export official` writes the weights as the official PyTorch code loads them (safetensors.torch.load_file,
 * then load_state_dict): exactly the official state_dict keys, in its order, float32.
 */
export function registerExport(program: Command): Command {
  const exportCmd = program
    .command('export')
    .description('export a training checkpoint as a model folder (export model), a model as ONNX graphs (export onnx)');
  exportCmd
    .command('model')
    .description("write a model folder (the EMA weights of a run's latest checkpoint) for sample / edit --model")
    .requiredOption('--run <dir>', 'the training run folder (the --out of causalfusion train)')
    .requiredOption('--out <dir>', 'the model folder to write')
    .action((flags: { run: string; out: string }) => {
      checkOutDir(flags.out, '--out');
      let result;
      try {
        result = exportCheckpoint(flags.run, flags.out);
      } catch (err) {
        throw new UsageError((err as Error).message.split('\n')[0]);
      }
      console.log(`wrote ${path.resolve(flags.out)}: EMA weights at step ${result.step} (${(result.wallSeconds / 3600).toFixed(2)} h of training)`);
    });
  exportCmd
    .command('onnx')
    .description('write the ONNX graphs of a model (cond.onnx, push.onnx, eps.onnx, shared weights.bin, causalfusion-onnx.json)')
    .option(
      '--model <dir|ckpt.pt>',
      'model folder (model.safetensors, config.json, meta.json) or official PyTorch checkpoint; default: the shipped MNIST model',
    )
    .requiredOption('--out <dir>', 'the folder to write')
    .action((flags: { model?: string; out: string }) => {
      const folder = readModelFolder(flags.model, undefined, { needsTokenizer: false });
      checkOutDir(flags.out, '--out');
      let manifest;
      try {
        manifest = exportOnnx(folder.weights ? { config: folder.config, weights: folder.weights, source: folder.dir } : folder.dir, flags.out);
      } catch (err) {
        // an --out that cannot be written is not the model's fault
        if (err instanceof OutputPathError) throw new UsageError(`--out: ${err.message}`);
        throw new UsageError(`${folder.dir}: ${(err as Error).message.split('\n')[0]}`);
      }
      // meta.json travels along, so the folder says what its classes and pixels are
      if (folder.weights) writeFileAtomic(path.join(flags.out, META_FILE), JSON.stringify(folder.meta, null, 2) + '\n');
      else copyFileAtomic(path.join(folder.dir, META_FILE), path.join(flags.out, META_FILE));
      const files = Object.values(manifest.graphs)
        .map((g) => g.file)
        .concat(manifest.weights);
      console.log(
        `wrote ${path.resolve(flags.out)}: ${files.join(', ')} (opset ${manifest.opset}, ${manifest.numTokens} tokens of ${manifest.tokenDim} values)`,
      );
    });
  exportCmd
    .command('official')
    .description(
      'write model.safetensors as the official PyTorch code loads it (safetensors.torch.load_file + load_state_dict): the official state_dict keys, float32',
    )
    .option(
      '--model <dir|ckpt.pt>',
      'model folder (model.safetensors, config.json, meta.json) or official PyTorch checkpoint; default: the shipped MNIST model',
    )
    .requiredOption('--out <file.safetensors>', 'the file to write')
    .action((flags: { model?: string; out: string }) => {
      const folder = readModelFolder(flags.model, undefined, { needsTokenizer: false });
      checkOutFile(flags.out, '--out', 'model.safetensors');
      if (path.extname(flags.out) !== '.safetensors')
        throw new UsageError(`--out: ${flags.out} does not end in .safetensors; give a name such as model.safetensors`);
      const { config } = folder;
      let weights = folder.weights;
      if (!weights) {
        try {
          weights = readWeights(folder.dir, config).weights; // checked against the config
        } catch (err) {
          throw new UsageError(`${folder.dir}: ${(err as Error).message.split('\n')[0]}`);
        }
      }
      // exactly the official keys, in the official state_dict order, float32; metadata only {"format": "pt"}
      const ordered = [...officialShapes(config).keys()].map((k): [string, NamedTensor] => [k, weights.get(k)!]);
      writeSafetensors(flags.out, ordered, { format: 'pt' });
      const params = ordered.reduce((a, [, t]) => a + t.data.length, 0);
      console.log(
        `wrote ${path.resolve(flags.out)}: ${ordered.length} tensors, ${params.toLocaleString('en-US')} parameters (float32, the official key names)`,
      );
      console.log(`the official model: ${officialConstructor(config)}`);
    });
  return exportCmd;
}

/** How to build the model in the official code: CausalDiffusionModel(...) with every argument, and the preset when it is one. */
function officialConstructor(config: ModelConfig): string {
  const args = Object.entries(configToJson(config)).map(([k, v]) => `${k}=${typeof v === 'boolean' ? (v ? 'True' : 'False') : v}`);
  const json = JSON.stringify(configToJson(config));
  const preset = OFFICIAL_PRESETS.find((p) => {
    try {
      return JSON.stringify(configToJson(makeConfig(p, { inputSize: config.inputSize, numClasses: config.numClasses }))) === json;
    } catch {
      return false;
    }
  });
  return `CausalDiffusionModel(${args.join(', ')})${preset ? `, i.e. ${preset} at ${config.inputSize * 16}x${config.inputSize * 16} images` : ''}`;
}
