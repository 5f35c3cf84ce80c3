import * as fs from 'fs';
import * as path from 'path';
import { Command } from 'commander';
import { exportOnnx } from '@causalfusion/onnx';
import { copyFileAtomic, OutputPathError } from '@causalfusion/safetensors';
import { exportCheckpoint } from '@causalfusion/train';
import { UsageError } from '../errors';
import { META_FILE, readModelFolder } from '../model';
import { checkOutDir } from '../outputs';

/**
 * `causalfusion export <format>`: turn what training produced into something the other commands run.
 * `export model` writes a model folder (EMA weights + config.json + meta.json) from a training run's
 * latest checkpoint, so a run in progress or one stopped early can be sampled from. `export onnx` writes a
 * model's ONNX graphs (cond tokens, clean-token push, eps over the KV cache) for onnxruntime anywhere.
 */
export function registerExport(program: Command): Command {
  const exportCmd = program.command('export').description('export a training checkpoint as a model folder (export model), a model as ONNX graphs (export onnx)');
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
    .option('--model <dir>', 'model folder (model.safetensors, config.json, meta.json); default: the shipped MNIST model')
    .requiredOption('--out <dir>', 'the folder to write')
    .action((flags: { model?: string; out: string }) => {
      const folder = readModelFolder(flags.model);
      checkOutDir(flags.out, '--out');
      let manifest;
      try {
        manifest = exportOnnx(folder.dir, flags.out);
      } catch (err) {
        // an --out that cannot be written is not the model's fault
        if (err instanceof OutputPathError) throw new UsageError(`--out: ${err.message}`);
        throw new UsageError(`${folder.dir}: ${(err as Error).message.split('\n')[0]}`);
      }
      // meta.json travels along, so the folder says what its classes and pixels are
      copyFileAtomic(path.join(folder.dir, META_FILE), path.join(flags.out, META_FILE));
      const files = Object.values(manifest.graphs).map((g) => g.file).concat(manifest.weights);
      console.log(`wrote ${path.resolve(flags.out)}: ${files.join(', ')} (opset ${manifest.opset}, ${manifest.numTokens} tokens of ${manifest.tokenDim} values)`);
    });
  return exportCmd;
}
