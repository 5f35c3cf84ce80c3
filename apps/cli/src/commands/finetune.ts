import { Command } from 'commander';
import { FINETUNE_USAGE, parseFinetuneArgs, runFinetuneCli } from '@causalfusion/train';
import { registerTrainingCommand } from './training-command';

/**
 * `causalfusion finetune --task classify --model DIR --data ... --out DIR [--probe] [--labels N]`: fine-tunes
 * a generative model's transformer as an image classifier (apps/train's finetune task). Bad flags, a
 * missing model or unreadable data are usage errors (exit 2); a NaN loss stops with exit 1; Ctrl-C /
 * SIGTERM saves a checkpoint and exits 130 / 143, as `causalfusion train` does.
 */
export function registerFinetune(program: Command): void {
  registerTrainingCommand(program, {
    name: 'finetune',
    description:
      'fine-tune a trained model as an image classifier: --task classify --model DIR --data mnist|fashion-mnist|DIR --labels N --out DIR [--probe] [--export DIR]; see finetune --help',
    flagsHelp: 'fine-tuning flags (causalfusion finetune --help lists them)',
    usage: FINETUNE_USAGE,
    parse: parseFinetuneArgs,
    run: runFinetuneCli,
  });
}
