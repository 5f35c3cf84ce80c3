/**
 * A multimodal model folder: `model.safetensors` (the weights; nn.Linear weights [out, in]), `config.json`
 * (format "causalfusion-multimodal" + the config), `tokenizer.json` (the caption BPE) and `meta.json`
 * (the canvas, the prompt words, how it was trained).
 */
import * as fs from 'fs';
import * as path from 'path';
import { makeDirs, readSafetensors, writeFileAtomic, writeSafetensors } from '@causalfusion/safetensors';
import { multimodalConfigFromJson, multimodalConfigToJson } from './config';
import { MultimodalModel } from './model';
import { CaptionCodec, loadCaptionTokenizer } from './text';
import { CAPTION_WORDS } from './scenes';

export const MODEL_WEIGHTS_FILE = 'model.safetensors';
export const MODEL_CONFIG_FILE = 'config.json';
export const MODEL_TOKENIZER_FILE = 'tokenizer.json';
export const MODEL_META_FILE = 'meta.json';

/** Where the shipped multimodal model lives (trained with the `multimodal` preset of apps/train). */
export const DEFAULT_MULTIMODAL_MODEL_DIR = path.resolve(__dirname, '..', 'assets', 'multimodal-model');

export interface MultimodalMeta {
  format: 'causalfusion-multimodal-model';
  dataset: string;
  /** Words a prompt may use. */
  words: string[];
  training?: Record<string, unknown>;
}

/** Write the weights, config, tokenizer and meta of a model into `dir`, atomically file by file. */
export function saveMultimodalModel(model: MultimodalModel, dir: string, codec: CaptionCodec, meta: Partial<MultimodalMeta> = {}): void {
  makeDirs(dir);
  const configJson = multimodalConfigToJson(model.config);
  writeSafetensors(path.join(dir, MODEL_WEIGHTS_FILE), model.stateDict(), { format: 'pt', config: JSON.stringify(configJson) });
  writeFileAtomic(path.join(dir, MODEL_CONFIG_FILE), JSON.stringify(configJson, null, 2) + '\n');
  writeFileAtomic(path.join(dir, MODEL_TOKENIZER_FILE), JSON.stringify(codec.tokenizer.toTokenizerJson()) + '\n');
  const full: MultimodalMeta = { format: 'causalfusion-multimodal-model', dataset: 'mnist-compositions', words: [...codec.words], ...meta };
  writeFileAtomic(path.join(dir, MODEL_META_FILE), JSON.stringify(full, null, 2) + '\n');
}

/** Read a model folder's JSON files only (no tfjs): for checking input before a backend starts. */
export function readMultimodalFolder(dir: string): { config: ReturnType<typeof multimodalConfigFromJson>; meta: MultimodalMeta } {
  for (const f of [MODEL_WEIGHTS_FILE, MODEL_CONFIG_FILE, MODEL_TOKENIZER_FILE]) {
    if (!fs.existsSync(path.join(dir, f))) throw new Error(`${dir} is not a multimodal model folder: ${f} is missing`);
  }
  const config = multimodalConfigFromJson(JSON.parse(fs.readFileSync(path.join(dir, MODEL_CONFIG_FILE), 'utf8')), path.join(dir, MODEL_CONFIG_FILE));
  const metaFile = path.join(dir, MODEL_META_FILE);
  const meta: MultimodalMeta = fs.existsSync(metaFile)
    ? JSON.parse(fs.readFileSync(metaFile, 'utf8'))
    : { format: 'causalfusion-multimodal-model', dataset: 'unknown', words: [...CAPTION_WORDS] };
  return { config, meta };
}

/** Load a model folder: the model (on the current tfjs backend), its caption codec and meta. */
export function loadMultimodalModel(dir: string): { model: MultimodalModel; codec: CaptionCodec; meta: MultimodalMeta } {
  const { config, meta } = readMultimodalFolder(dir);
  const tokenizer = loadCaptionTokenizer(path.join(dir, MODEL_TOKENIZER_FILE));
  if (tokenizer.vocabSize !== config.vocabSize) {
    throw new Error(`${dir}: tokenizer.json has ${tokenizer.vocabSize} tokens but the model was built for ${config.vocabSize}`);
  }
  const codec = new CaptionCodec(tokenizer, config.textLength, meta.words);
  const model = new MultimodalModel(config);
  try {
    model.loadStateDict(readSafetensors(path.join(dir, MODEL_WEIGHTS_FILE)).tensors, path.join(dir, MODEL_WEIGHTS_FILE));
  } catch (e) {
    model.dispose();
    throw e;
  }
  return { model, codec, meta };
}
