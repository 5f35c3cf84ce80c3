/**
 * @causalfusion/train: the CausalFusion training app. The train command has two tasks (./task): `class`
 * (./config, ./trainer) and `multimodal` (./multimodal-config, ./multimodal-trainer); both keep their weights
 * as host arrays, compute gradients on a runtime (./runtime: onnxruntime or tfjs), apply one update
 * (./update) and write one checkpoint format (./checkpoint).
 *
 * ```ts
 * import { parseTrainArgs, train } from '@causalfusion/train';
 * const result = await train(parseTrainArgs(['--preset', 'tiny', '--out', 'runs/tiny', '--steps', '10']));
 * console.log(result.loss, result.stepsPerSec);
 * ```
 */
export { makeTrainConfig, modelConfigOf, parseTrainArgs, validateTrainConfig, TRAIN_PRESETS, TRAIN_USAGE, RESUMABLE_KEYS } from './config';
export type { PresetName, TrainCommand, TrainConfig } from './config';
export { BatchSampler, loadTrainingData } from './dataset';
export type { TrainingData } from './dataset';
export { batchShard, drawStepRandomness, shardRanges, sliceShard } from './step';
export { createMultimodalRuntime, createRuntime } from './runtime';
export type { MultimodalRuntime, RuntimeName, RuntimeOptions, TrainingRuntime } from './runtime';
export { openRun, saveRun } from './run';
export type { RunConfig, RunState } from './run';
export { applyUpdate, checkLoss } from './update';
export type { UpdateConfig } from './update';
export type { RecipeOptions, ShardInput, ShardResult, StepRandomness } from './step';
export { ReplicaPool } from './parallel';
export { readCheckpoint, readCheckpointState, writeCheckpoint, findCheckpoint, CHECKPOINT_FORMAT, MULTIMODAL_CHECKPOINT_FORMAT } from './checkpoint';
export type { CheckpointContent, CheckpointModel, CheckpointState } from './checkpoint';
export { Progress, writeGridPng, writeLossPng, readCsv, CSV_HEADER } from './report';
export type { LogRow } from './report';
export { train, writeSamples, lrAt, emaDecayAt, NanLossError } from './trainer';
export type { TrainOptions, TrainResult } from './trainer';
export { classCheckpointModel, exportModel, exportCheckpoint, modelMeta } from './export';
export type { TrainingProvenance } from './export';
export { runTrainCli, trainExitCode } from './main';
export { signalExitCode } from './loop';
export { parseMultimodalTrainArgs, validateMultimodalTrainConfig, multimodalModelConfig, MULTIMODAL_PRESETS, MULTIMODAL_USAGE } from './multimodal-config';
export type { MultimodalTrainCommand, MultimodalTrainConfig, MultimodalPresetName } from './multimodal-config';
export { trainMultimodal, multimodalCheckpointModel } from './multimodal-trainer';
export type { MultimodalTrainResult } from './multimodal-trainer';
export { parseTrainCommand, taskOf } from './task';
export type { TaskName, TrainTask } from './task';
export {
  finetune,
  parseFinetuneArgs,
  runFinetuneCli,
  validateFinetuneConfig,
  balancedSubset,
  loadLabeledData,
  FINETUNE_USAGE,
  FINETUNE_CHECKPOINT_FORMAT,
  PROBE_LR,
} from './finetune';
export type { FinetuneCommand, FinetuneConfig, FinetuneResult, LabeledData } from './finetune';
