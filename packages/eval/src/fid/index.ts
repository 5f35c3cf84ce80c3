export type { RgbImage, FeatureBatch, FeatureExtractor } from './extractor';
export { frechetDistance, type GaussianStats, type FrechetOptions, type FrechetResult } from './frechet';
export { FeatureStatistics, mergePartials, statisticsOf, type PartialStatistics } from './statistics';
export { readPartialNpz, savePartialNpz, type ShardInfo, type ShardPartial } from './partial';
export { readNpz, writeNpz, parseNpy, encodeNpy, saveStatsNpz, statsFromNpzArrays, type NpyArray, type NpyDtype } from './npz';
export { preprocessInception } from './preprocess';
export { listImageFiles, decodeImage, IMAGE_EXTENSIONS } from './images';
export { createInceptionExtractor, type InceptionExtractorOptions } from './inception';
export { InceptionScoreAccumulator } from './inception-score';
export {
  computeFid,
  computeStatistics,
  partialStatisticsFromImages,
  statisticsFromImages,
  type FidOptions,
  type FidResult,
  type ProgressCallback,
  type StatisticsOptions,
  type StatisticsResult,
} from './fid';
