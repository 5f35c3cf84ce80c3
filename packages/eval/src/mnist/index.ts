/**
 * The shipped MNIST classifier (test accuracy in assets/mnist-classifier/config.json) and the
 * "FID-MNIST" feature extractor built on its penultimate layer.
 */
export { loadMnistClassifier, createMnistClassifier, saveMnistClassifier, DEFAULT_MNIST_CLASSIFIER_DIR, TRAIN_MNIST_CLASSIFIER_COMMAND } from './classifier';
export type { MnistClassifier, MnistClassifierConfig, MnistPredictions, MnistFeatures } from './classifier';
export { createMnistFeatureExtractor, mnistInputs, MNIST_EXTRACTOR_NAME } from './extractor';
export type { MnistFeatureExtractorOptions } from './extractor';
export { trainMnistClassifier } from './train';
export type { TrainOptions as MnistTrainOptions, TrainProgress as MnistTrainProgress, LabelledImages } from './train';
export { WEIGHT_SHAPES as MNIST_CLASSIFIER_WEIGHT_SHAPES, FEATURE_DIM as MNIST_FEATURE_DIM } from './model';
