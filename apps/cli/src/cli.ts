#!/usr/bin/env node
/**
 * The `causalfusion` command. Each sub-command lives in `commands/` and composes the packages; none
 * holds model logic itself. Errors a user can fix are one line on stderr with exit code 2.
 */
import { Command } from 'commander';
import { runMain } from './errors';

type Register = (program: Command) => void;

/**
 * The commands, in the order `--help` lists them, each with the module that registers it. A module is
 * required only when its command runs (or for the full `--help`), so a command loads only what it uses:
 * `sample --runtime ort` never loads tfjs, `info` never loads onnxruntime.
 */
const COMMANDS: Record<string, () => Register> = {
  sample: () => require('./commands/sample').registerSample,
  edit: () => require('./commands/edit').registerEdit,
  info: () => require('./commands/info').registerInfo,
  eval: () => require('./commands/eval').registerEval,
  train: () => require('./commands/train').registerTrain,
  export: () => require('./commands/export').registerExport,
  convert: () => require('./commands/convert').registerConvert,
  vae: () => require('./commands/vae').registerVae,
  generate: () => require('./commands/generate').registerGenerate,
  caption: () => require('./commands/caption').registerCaption,
  finetune: () => require('./commands/finetune').registerFinetune,
  classify: () => require('./commands/classify').registerClassify,
  serve: () => require('./commands/serve').registerServe,
};

/** The command `args` (the arguments after the program) names: the first one that is not an option. */
function commandOf(args: readonly string[]): string | undefined {
  return args.find((a) => !a.startsWith('-'));
}

/**
 * The program. With `args`, only the command they name is registered (every command when they name none,
 * e.g. `--help`, or an unknown one, so that commander lists them).
 */
export function buildProgram(args?: readonly string[]): Command {
  const program = new Command();
  program
    .name('causalfusion')
    .description('CausalFusion (Deng et al., arXiv 2412.12095) in TypeScript')
    .version(require('../package.json').version)
    .exitOverride();
  const name = args ? commandOf(args) : undefined;
  const names = name !== undefined && Object.hasOwn(COMMANDS, name) ? [name] : Object.keys(COMMANDS);
  for (const n of names) COMMANDS[n]()(program);
  return program;
}

if (require.main === module) runMain(buildProgram(process.argv.slice(2)), process.argv);
