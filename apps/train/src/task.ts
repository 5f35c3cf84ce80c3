/**
 * The train command's tasks: `--task class` (the default: class-conditional images, ./config + ./trainer)
 * and `--task multimodal` (one model for text-to-image and captioning, ./multimodal-config +
 * ./multimodal-trainer). {@link parseTrainCommand} reads `--task` and hands the flags to that task's parser;
 * main.ts dispatches on the result.
 */
import { parseTrainArgs, type TrainCommand } from './config';
import { parseMultimodalTrainArgs, type MultimodalTrainCommand } from './multimodal-config';

export type TaskName = 'class' | 'multimodal';

/** What the command line asks for: one task's command. */
export type TrainTask = ({ task: 'class' } & TrainCommand) | ({ task: 'multimodal' } & MultimodalTrainCommand);

/** The value of --task (default `class`); Errors name the allowed values. */
export function taskOf(argv: string[]): TaskName {
  let task = 'class';
  argv.forEach((a, i) => {
    if (a === '--task') task = argv[i + 1] ?? '';
    else if (a.startsWith('--task=')) task = a.slice('--task='.length);
  });
  if (task !== 'class' && task !== 'multimodal') throw new Error(`--task must be class or multimodal, got "${task}"`);
  return task;
}

/** Parse the train command line (flags checked by the task's parser; Errors name the flag). */
export function parseTrainCommand(argv: string[]): TrainTask {
  return taskOf(argv) === 'multimodal' ? { task: 'multimodal', ...parseMultimodalTrainArgs(argv) } : { task: 'class', ...parseTrainArgs(argv) };
}
