/**
 * A multimodal model folder (the files of @causalfusion/config: `model.safetensors`, `config.json` with
 * format "causalfusion-multimodal", `tokenizer.json` (the caption BPE) and `meta.json` (the dataset, the
 * prompt words, how it was trained)): writing one and reading its JSON files, without tfjs (the model is
 * loaded by ./load).
 */
import * as fs from 'fs';
import * as path from 'path';
import {
  CONFIG_FILE,
  META_FILE,
  MULTIMODAL_META_FORMAT,
  multimodalConfigFromJson,
  multimodalConfigToJson,
  parseMultimodalMeta,
  TOKENIZER_FILE,
  WEIGHTS_FILE,
  writeModelFolder,
  type MultimodalConfig,
  type MultimodalMeta,
  type MultimodalSamplingDefaults,
  type StateDict,
} from '@causalfusion/config';
import type { CaptionCodec } from './text';
import { CAPTION_WORDS } from './scenes';

/** Where the shipped multimodal model lives (trained with the `multimodal` preset of apps/train). */
export const DEFAULT_MULTIMODAL_MODEL_DIR = path.resolve(__dirname, '..', 'assets', 'multimodal-model');

/** Text-to-image settings where neither a flag nor the model's meta.json `sampling` gives them. */
export const DEFAULT_GENERATE_SAMPLING = { sampler: 'ddpm', arSteps: 4, steps: 50, cfg: 2 } as const;

/** A model's text-to-image settings (`generate`, the API, bench:multimodal): its meta.json `sampling` over the defaults. */
export function modelSampling(meta: MultimodalMeta): Required<MultimodalSamplingDefaults> {
  return { ...DEFAULT_GENERATE_SAMPLING, ...meta.sampling };
}

/**
 * Write a model folder: the weights of `model` (a MultimodalModel, or host arrays as
 * `{ config, stateDict: () => officialStateDict(entries, arrays) }`), its config, the codec's tokenizer and
 * the meta, file by file atomically.
 */
export function saveMultimodalModel(
  model: { config: MultimodalConfig; stateDict(): StateDict },
  dir: string,
  codec: CaptionCodec,
  meta: Partial<MultimodalMeta> = {},
): void {
  writeModelFolder(dir, {
    weights: model.stateDict(),
    config: multimodalConfigToJson(model.config),
    tokenizer: codec.tokenizer.toTokenizerJson(),
    meta: { format: MULTIMODAL_META_FORMAT, dataset: 'mnist-compositions', words: [...codec.words], ...meta },
  });
}

/** Read a model folder's JSON files only (no tfjs): for checking input before a backend starts. */
export function readMultimodalFolder(dir: string): { config: MultimodalConfig; meta: MultimodalMeta } {
  for (const f of [WEIGHTS_FILE, CONFIG_FILE, TOKENIZER_FILE]) {
    if (!fs.existsSync(path.join(dir, f))) throw new Error(`${dir} is not a multimodal model folder: ${f} is missing`);
  }
  const config = multimodalConfigFromJson(JSON.parse(fs.readFileSync(path.join(dir, CONFIG_FILE), 'utf8')), path.join(dir, CONFIG_FILE));
  const metaFile = path.join(dir, META_FILE);
  const meta: MultimodalMeta = fs.existsSync(metaFile)
    ? parseMultimodalMeta(JSON.parse(fs.readFileSync(metaFile, 'utf8')), metaFile)
    : { format: MULTIMODAL_META_FORMAT, dataset: 'unknown', words: [...CAPTION_WORDS] };
  return { config, meta };
}
