/**
 * The models a studio serves: the shipped ones and the folders given with `--model` at start, nothing else.
 * A request names a model by its id ("0", "1", ...), never by a path, so no request reaches the file system
 * outside these folders. Folders are read and checked at start (bad ones are one-line errors then); the
 * weights are loaded on a model's first request and kept until the server closes.
 */
import * as fs from 'fs';
import * as path from 'path';
import { initBackend } from '@causalfusion/backend';
import { DEFAULT_MULTIMODAL_MODEL_DIR, loadMultimodalModel, type CaptionCodec, type MultimodalModel } from '@causalfusion/multimodal';
import { TOKENIZER_FILE, WEIGHTS_FILE } from '@causalfusion/config';
import type { Denoiser } from '@causalfusion/sampler';
import { openMultimodalFolder } from '../commands/generate';
import { DEFAULT_MODEL_DIR, readModelFolder, type ModelFolder } from '../model-folder';
import { openModel, type OpenedModel, type RuntimeSettings } from '../runtime-flags';
import { JobQueue } from './queue';

interface Served {
  /** What requests call it by. */
  id: string;
  /** What the page shows. */
  name: string;
  /** Its requests, one at a time. */
  queue: JobQueue;
  /** Free the loaded weights (and the tokenizer's runtime). */
  close(): Promise<void>;
}

/** A class-conditional model (sample, edit) on onnxruntime, as the CLI runs it. */
export interface ClassModel extends Served {
  kind: 'class';
  folder: ModelFolder;
  denoiser(): Promise<Denoiser<number>>;
}

/** A multimodal model (generate from a prompt, caption) on tfjs, as the CLI runs it. */
export interface PromptModel extends Served {
  kind: 'prompt';
  folder: ReturnType<typeof openMultimodalFolder>;
  load(): Promise<{ model: MultimodalModel; codec: CaptionCodec }>;
}

export type StudioModel = ClassModel | PromptModel;

/** Load once, on first use; a failed load is tried again by the next request. */
function once<T>(load: () => Promise<T>): { get(): Promise<T>; loaded(): Promise<T> | null } {
  let value: Promise<T> | null = null;
  return {
    get: () => {
      value ??= load().catch((e) => {
        value = null;
        throw e;
      });
      return value;
    },
    loaded: () => value,
  };
}

function classModel(id: string, folder: ModelFolder, name: string, runtime: RuntimeSettings, queue: JobQueue): ClassModel {
  const opened = once<OpenedModel>(() => openModel(folder, runtime));
  return {
    kind: 'class',
    id,
    name,
    folder,
    queue,
    denoiser: async () => (await opened.get()).denoiser,
    close: async () => {
      await (await opened.loaded()?.catch(() => null))?.close();
      await folder.tokenizer.close();
    },
  };
}

function promptModel(id: string, folder: ReturnType<typeof openMultimodalFolder>, name: string, queue: JobQueue): PromptModel {
  const loaded = once(async () => {
    await initBackend({ quiet: true });
    return loadMultimodalModel(folder.dir);
  });
  return {
    kind: 'prompt',
    id,
    name,
    folder,
    queue,
    load: () => loaded.get(),
    close: async () => (await loaded.loaded()?.catch(() => null))?.model.dispose(),
  };
}

/**
 * The shipped models (where present) and then each `--model` folder: a multimodal model folder (it holds a
 * tokenizer.json) or anything `sample --model` takes. `queueSize` requests may wait per model.
 */
export function loadStudioModels(dirs: string[], runtime: RuntimeSettings, queueSize: number): StudioModel[] {
  const models: StudioModel[] = [];
  const seen = new Set<string>();
  const add = (dir: string, shipped: boolean) => {
    const abs = path.resolve(dir);
    if (seen.has(abs)) return;
    seen.add(abs);
    const id = String(models.length);
    const queue = new JobQueue(queueSize);
    if (abs === DEFAULT_MULTIMODAL_MODEL_DIR || fs.existsSync(path.join(abs, TOKENIZER_FILE))) {
      const folder = openMultimodalFolder(shipped ? undefined : dir);
      const name = shipped ? `${folder.meta.dataset} (shipped, text-to-image + captions)` : `${path.basename(abs)} (text-to-image + captions)`;
      models.push(promptModel(id, folder, name, queue));
    } else {
      const folder = readModelFolder(shipped ? undefined : dir);
      const name = shipped ? `${folder.meta.dataset} (shipped, class-conditional)` : `${path.basename(abs)} (${folder.meta.dataset}, class-conditional)`;
      models.push(classModel(id, folder, name, runtime, queue));
    }
  };
  // The shipped models are served when they have been trained (their folders may hold only a README).
  if (fs.existsSync(path.join(DEFAULT_MODEL_DIR, WEIGHTS_FILE))) add(DEFAULT_MODEL_DIR, true);
  if (fs.existsSync(path.join(DEFAULT_MULTIMODAL_MODEL_DIR, WEIGHTS_FILE))) add(DEFAULT_MULTIMODAL_MODEL_DIR, true);
  for (const dir of dirs) add(dir, false);
  return models;
}
