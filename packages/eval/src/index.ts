/**
 * @causalfusion/eval: metrics computed exactly as the reference code computes them.
 * - FID: streaming float64 statistics, the Frechet distance of pytorch-fid / the ADM evaluator, .npz
 *   stats interop, InceptionV3 (ONNX) features with pytorch-fid's preprocessing.
 * - FID-MNIST: the shipped MNIST classifier's penultimate features.
 * - Captioning: CIDEr-D and BLEU-1..4 as pycocoevalcap, a PTB-style caption tokenizer.
 */
export * from './fid';
export * from './caption';
export * from './mnist';
