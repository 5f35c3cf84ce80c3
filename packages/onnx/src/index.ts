/**
 * @causalfusion/onnx: the CausalFusion transformer as ONNX graphs, built in TypeScript from a model's
 * official weights, and run by onnxruntime-node as a `Denoiser` for @causalfusion/sampler (no tfjs).
 *
 * ```ts
 * const denoiser = await OrtDenoiser.load('models/mnist', { threads: 2 }); // model folder or exported ONNX folder
 * const { tokens } = await sample(denoiser, { conditions: [3, 7], arSteps: 4, cfgScale: 3 });
 * await denoiser.release();
 * exportOnnx('models/mnist', 'models/mnist-onnx');                          // cond/push/eps.onnx + manifest
 * ```
 */
export { buildOnnxGraphs, graphSignature, IO_NAMES, OPSET } from './graph';
export type { BuildOptions, ExternalWeights, GraphName, OnnxGraphs } from './graph';
export { exportOnnx, readManifest, MANIFEST_FILE, FORMAT, FORMAT_VERSION, GRAPH_FILES, EXTERNAL_WEIGHTS_FILE } from './export';
export type { InMemoryModel } from './export';
export type { LoadedManifest, OnnxManifest } from './export';
export { OrtDenoiser } from './denoiser';
export type { KVLayer, OrtDenoiserSession, OrtOptions } from './denoiser';
export { GradGraph } from './autodiff';
export { buildTrainingGraph, TransformerLayers, TRAIN_IO } from './train-graph';
export { OrtTrainingSession } from './trainer';
export type { LossAndGrads, TrainingSessionOptions } from './trainer';
export { trainStepParity, argsortRows, ROUNDOFF_GRADIENT, EPS_DOMINATED } from './train-parity';
export type { TrainStepParity } from './train-parity';
export { checkWeights, expectedShapes, readModelFolder } from './weights';
export type { ModelFolder, Weights } from './weights';
// the multimodal model (@causalfusion/multimodal) on onnxruntime: its training graph and step, tfjs-free
export { buildMultimodalTrainingGraph, MULTIMODAL_TRAIN_IO } from './multimodal-train-graph';
export type { MultimodalGraphVariant } from './multimodal-train-graph';
export { OrtMultimodalTrainingSession } from './multimodal-trainer';
export type { MultimodalLossAndGrads, MultimodalTrainingSessionOptions } from './multimodal-trainer';
// a generative model's transformer as an image classifier (fine-tuning, linear probe, inference; Table 6b)
export {
  buildClassifyGraph,
  classifyEntries,
  classifyGraphEntries,
  classifyHeadEntries,
  classifyTrainable,
  usedByClassifier,
  CLASSIFY_IO,
  HEAD_PREFIX,
} from './classify-graph';
export type { ClassifyEntry, ClassifyMode } from './classify-graph';
export { OrtClassifySession, predictions } from './classify-trainer';
export type { ClassifyLossAndGrads, ClassifySessionOptions } from './classify-trainer';
export { OrtClassifier, readClassifierFolder, writeClassifierFolder, readMeta, pixelTokenizerOf, initialHead, readHead, HEAD_FILE } from './classifier';
export type { ClassifierWeights, PixelTokenizerMeta } from './classifier';
