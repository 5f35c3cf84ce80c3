import * as fs from 'fs';
import * as path from 'path';
import { Command } from 'commander';
import { pixelTokenizer } from '@causalfusion/data';
import { OrtClassifier } from '@causalfusion/onnx';
import { writeFileAtomic } from '@causalfusion/safetensors';
import { UsageError } from '../errors';
import { fitToModel, readRaw } from '../images';
import { boundedInt, LIMITS } from '../limits';
import { checkOutFile } from '../outputs';

/** File extensions `classify` reads in a folder. */
const IMAGE_EXTENSIONS = new Set(['.png', '.jpg', '.jpeg', '.webp']);

/** Images a call classifies at once (one onnxruntime run). */
const BATCH = 256;

/** The image files under `dir` (sub-folders included, hidden entries skipped), sorted by path. */
export function listImages(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const name of fs.readdirSync(d).sort()) {
      if (name.startsWith('.')) continue;
      const p = path.join(d, name);
      const stat = fs.statSync(p);
      if (stat.isDirectory()) walk(p);
      else if (stat.isFile() && IMAGE_EXTENSIONS.has(path.extname(name).toLowerCase())) out.push(p);
    }
  };
  walk(dir);
  return out;
}

/** A CSV field, quoted when it holds a comma, a quote or a line break. */
function csvField(s: string): string {
  return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/**
 * `causalfusion classify --model DIR --input img.png|folder`: the label a classifier folder (written by
 * `causalfusion finetune --export`) gives each image, one line per image: `path<TAB>label<TAB>probability`
 * (the softmax probability of that label). A folder classifies every PNG / JPEG / WebP under it, sorted by
 * path. Images are read as the model's channels, their centered square brought to its size (as `edit`
 * reads its input). `--out file.csv` also writes the lines as CSV (path,label,probability).
 */
export function registerClassify(program: Command): void {
  program
    .command('classify')
    .description('classify images with a fine-tuned model (causalfusion finetune --export): --model DIR --input img.png|folder [--out results.csv]')
    .requiredOption('--model <dir>', 'classifier folder written by causalfusion finetune --task classify --export')
    .requiredOption('--input <path>', 'an image (PNG, JPEG, WebP), or a folder: every image under it')
    .option('--out <file>', 'also write the results as CSV (path,label,probability)')
    .option('--threads <n>', 'onnxruntime intra-op threads', '2')
    .action(async (flags: { model: string; input: string; out?: string; threads: string }) => {
      // outputs and inputs first, before the model is loaded
      if (flags.out !== undefined) {
        if (path.extname(flags.out).toLowerCase() !== '.csv') throw new UsageError(`--out: ${flags.out} is not a .csv file name; give one such as results.csv`);
        checkOutFile(flags.out, '--out', 'results.csv');
      }
      const threads = boundedInt(flags.threads, '--threads', LIMITS.threads);
      if (!fs.existsSync(flags.input)) throw new UsageError(`--input: ${flags.input} does not exist`);
      const files = fs.statSync(flags.input).isDirectory() ? listImages(flags.input) : [flags.input];
      if (files.length === 0) throw new UsageError(`--input: ${flags.input} holds no .png, .jpg, .jpeg or .webp images`);
      if (!fs.existsSync(flags.model)) throw new UsageError(`--model: ${flags.model} does not exist`);
      let classifier: OrtClassifier;
      try {
        classifier = await OrtClassifier.load(flags.model, { threads });
      } catch (e) {
        throw new UsageError(`--model: ${(e as Error).message.split('\n')[0]}`);
      }
      const lines: string[] = [];
      try {
        const t = classifier.tokenizer;
        const tokenizer = pixelTokenizer({ imageSize: t.imageSize, channels: t.channels, patchSize: t.patchSize });
        for (let from = 0; from < files.length; from += BATCH) {
          const batch = files.slice(from, from + BATCH);
          const images = new Uint8Array(batch.length * tokenizer.pixelsPerImage);
          for (let i = 0; i < batch.length; i++) {
            images.set(fitToModel(await readRaw(batch[i], t.channels, '--input'), t.imageSize), i * tokenizer.pixelsPerImage);
          }
          const { labels, probs } = await classifier.classifyTokens(tokenizer.encode(images));
          batch.forEach((file, i) => {
            const label = classifier.classNames[labels[i]];
            console.log(`${file}\t${label}\t${probs[i].toFixed(4)}`);
            lines.push([csvField(file), csvField(label), probs[i].toFixed(6)].join(','));
          });
        }
      } finally {
        await classifier.release();
      }
      if (flags.out !== undefined) writeFileAtomic(flags.out, ['path,label,probability', ...lines].join('\n') + '\n');
    });
}
