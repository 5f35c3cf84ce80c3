/**
 * @causalfusion/train: the CausalFusion training app.
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
export { createRuntime } from './runtime';
export type { RuntimeName, RuntimeOptions, TrainingRuntime } from './runtime';
export { applyUpdate, checkLoss } from './update';
export type { UpdateConfig } from './update';
export type { RecipeOptions, ShardInput, ShardResult, StepRandomness } from './step';
export { ReplicaPool } from './parallel';
export { readCheckpoint, readCheckpointState, writeCheckpoint, findCheckpoint, CHECKPOINT_FORMAT } from './checkpoint';
export type { CheckpointContent, CheckpointState } from './checkpoint';
export { Progress, writeGridPng, writeLossPng, readCsv, CSV_HEADER } from './report';
export type { LogRow } from './report';
export { train, exportModel, exportCheckpoint, modelMeta, writeSamples, lrAt, emaDecayAt, NanLossError } from './trainer';
export type { TrainOptions, TrainResult, TrainingProvenance } from './trainer';
export { runTrainCli, trainExitCode } from './main';
export { signalExitCode } from './loop';
export {
  parseMultimodalTrainArgs, trainMultimodal, validateMultimodalTrainConfig, multimodalModelConfig, MULTIMODAL_PRESETS, MULTIMODAL_USAGE,
} from './multimodal';
export type { MultimodalTrainCommand, MultimodalTrainConfig, MultimodalTrainResult, MultimodalPresetName } from './multimodal';
export { taskOf } from './config';
