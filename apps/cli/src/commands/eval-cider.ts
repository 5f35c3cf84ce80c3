import * as fs from 'fs';
import { Command } from 'commander';
import { evaluateCaptions } from '@causalfusion/eval';
import { UsageError } from '../errors';

interface CiderCliOptions {
  refs: string;
  cands: string;
  json?: boolean;
  tokenize: boolean;
}

function readJson(file: string, flag: string): unknown {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new UsageError(`${flag}: cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new UsageError(`${flag}: ${file} is not valid JSON: ${(e as Error).message}`);
  }
}

/** `causalfusion eval cider`: CIDEr-D and BLEU-1..4 of COCO-format captions, as pycocoevalcap computes them. */
export function registerEvalCider(evalCmd: Command): void {
  evalCmd
    .command('cider')
    .description('CIDEr-D and BLEU-1..4 of captions, as pycocoevalcap (COCOEvalCap) computes them')
    .requiredOption('--refs <file>', 'references, COCO annotations format: {"annotations":[{"image_id","caption"}]}')
    .requiredOption('--cands <file>', 'candidates, COCO results format: [{"image_id","caption"}]')
    .option('--json', 'print {"CIDEr","BLEU_1".."BLEU_4","perImage"} as JSON')
    .option('--no-tokenize', 'captions are already tokenized: split on whitespace only')
    .action((opts: CiderCliOptions) => {
      const refs = readJson(opts.refs, '--refs');
      const cands = readJson(opts.cands, '--cands');
      let result;
      try {
        result = evaluateCaptions(refs, cands, {
          tokenize: opts.tokenize,
          refsName: opts.refs,
          candsName: opts.cands,
          onUnscoredImages: (count, total) =>
            console.error(`note: ${count} of ${total} images in ${opts.refs} have no candidate; they are skipped, as COCOEvalCap does`),
        });
      } catch (e) {
        if (e instanceof TypeError || e instanceof RangeError) throw new UsageError(e.message);
        throw e;
      }
      const { CIDEr, BLEU_1, BLEU_2, BLEU_3, BLEU_4, perImage } = result;
      if (opts.json) {
        console.log(JSON.stringify({ CIDEr, BLEU_1, BLEU_2, BLEU_3, BLEU_4, perImage }));
        return;
      }
      console.log(`${Object.keys(perImage).length} images`);
      for (const [name, value] of Object.entries({ CIDEr, BLEU_1, BLEU_2, BLEU_3, BLEU_4 })) {
        console.log(`${name.padEnd(7)} ${value.toFixed(6)}`);
      }
    });
}
