/**
 * Where a training step's loss and gradients are computed, for both tasks. The runtimes take the
 * parameters as host arrays (the parameter table's order, training layout) and the batch with every random
 * draw of the step made, and return the loss and the gradient of each trainable parameter; the trainer
 * then applies the one update (clip, AdamW, EMA) on host arrays.
 *
 *   ort:  the training step as ONNX graphs on onnxruntime-node (@causalfusion/onnx), with intra-op
 *         threads. tfjs is never loaded.
 *   tfjs: the tfjs model (@causalfusion/transformer, @causalfusion/multimodal; wasm here, tensorflow where
 *         tfjs-node is installed); the class task runs data-parallel over worker_threads. Loaded only when chosen.
 */
import type { ModelConfig, MultimodalConfig, MultimodalStepInputs, TrainingShard } from '@causalfusion/config';
import type { GaussianDiffusion } from '@causalfusion/diffusion';

export type RuntimeName = 'ort' | 'tfjs';

export interface TrainingRuntime {
  readonly name: RuntimeName;
  /** What the startup line says about it (e.g. "onnxruntime-node, 2 threads"). */
  readonly description: string;
  /** Loss and gradients of the whole batch (`shard` covers it: batchSize = its N). */
  lossAndGrads(params: Float32Array[], shard: TrainingShard): Promise<{ loss: number; grads: (Float32Array | null)[] }>;
  close(): Promise<void>;
}

export interface RuntimeOptions {
  /** ort: intra-op threads. */
  threads: number;
  /** tfjs: data-parallel replicas (the main thread and workers - 1 worker_threads), and the backend. */
  workers: number;
  backend?: 'tensorflow' | 'wasm' | 'cpu';
}

export async function createRuntime(name: RuntimeName, config: ModelConfig, options: RuntimeOptions): Promise<TrainingRuntime> {
  if (name === 'ort') {
    // required here, not at the top: each runtime loads only its own library
    const { OrtTrainingSession } = require('@causalfusion/onnx') as typeof import('@causalfusion/onnx');
    const session = await OrtTrainingSession.create(config, { threads: options.threads });
    return {
      name,
      description: `onnxruntime-node, ${options.threads} thread${options.threads > 1 ? 's' : ''}`,
      lossAndGrads: (params, shard) => session.lossAndGrads(params, shard),
      close: () => session.release(),
    };
  }
  const { createTfjsRuntime } = require('./tfjs-runtime') as typeof import('./tfjs-runtime');
  return createTfjsRuntime(config, options);
}

/** The multimodal task's runtime: the loss, its parts and every parameter's gradient of a step. */
export interface MultimodalRuntime {
  readonly name: RuntimeName;
  readonly description: string;
  lossAndGrads(
    params: Float32Array[],
    step: MultimodalStepInputs,
  ): Promise<{ loss: number; textLoss: number; imageLoss: number; grads: (Float32Array | null)[] }>;
  close(): Promise<void>;
}

export async function createMultimodalRuntime(
  name: RuntimeName,
  config: MultimodalConfig,
  options: { threads: number; backend?: 'tensorflow' | 'wasm' | 'cpu'; diffusion: GaussianDiffusion },
): Promise<MultimodalRuntime> {
  if (name === 'ort') {
    const { OrtMultimodalTrainingSession } = require('@causalfusion/onnx') as typeof import('@causalfusion/onnx');
    const session = await OrtMultimodalTrainingSession.create(config, { threads: options.threads, diffusion: options.diffusion });
    return {
      name,
      description: `onnxruntime-node, ${options.threads} thread${options.threads > 1 ? 's' : ''}`,
      lossAndGrads: (params, step) => session.lossAndGrads(params, step),
      close: () => session.release(),
    };
  }
  const { createMultimodalTfjsRuntime } = require('./multimodal-tfjs-runtime') as typeof import('./multimodal-tfjs-runtime');
  return createMultimodalTfjsRuntime(config, options.diffusion, options.backend);
}
