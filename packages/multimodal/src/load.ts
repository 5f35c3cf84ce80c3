/**
 * Loading a multimodal model folder (./model-folder) into the tfjs model.
 */
import * as path from 'path';
import { TOKENIZER_FILE, WEIGHTS_FILE, type MultimodalMeta } from '@causalfusion/config';
import { readSafetensors } from '@causalfusion/safetensors';
import { MultimodalModel } from './model';
import { readMultimodalFolder } from './model-folder';
import { CaptionCodec, loadCaptionTokenizer } from './text';

/** Load a model folder: the model (on the current tfjs backend), its caption codec and meta. */
export function loadMultimodalModel(dir: string): { model: MultimodalModel; codec: CaptionCodec; meta: MultimodalMeta } {
  const { config, meta } = readMultimodalFolder(dir);
  const tokenizer = loadCaptionTokenizer(path.join(dir, TOKENIZER_FILE));
  if (tokenizer.vocabSize !== config.vocabSize) {
    throw new Error(`${dir}: tokenizer.json has ${tokenizer.vocabSize} tokens but the model was built for ${config.vocabSize}`);
  }
  const codec = new CaptionCodec(tokenizer, config.textLength, meta.words);
  const model = new MultimodalModel(config);
  try {
    model.loadStateDict(readSafetensors(path.join(dir, WEIGHTS_FILE)).tensors, path.join(dir, WEIGHTS_FILE));
  } catch (e) {
    model.dispose();
    throw e;
  }
  return { model, codec, meta };
}
