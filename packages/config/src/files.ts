/**
 * A model folder, for both models: `model.safetensors` (the official keys and layouts, the config.json
 * in its metadata), `config.json`, `meta.json` (what the model makes and how it was trained: the
 * schemas below, written by apps/train and read by the CLI) and, for the multimodal model, `tokenizer.json`.
 * {@link writeModelFolder} writes one, file by file atomically.
 */
import * as path from 'path';
import { makeDirs, writeFileAtomic, writeSafetensors } from '@causalfusion/safetensors';
import type { StateDict } from './layers';

export const WEIGHTS_FILE = 'model.safetensors';
export const CONFIG_FILE = 'config.json';
export const META_FILE = 'meta.json';
/** The caption BPE of a multimodal model. */
export const TOKENIZER_FILE = 'tokenizer.json';

/** The `format` of a class-conditional model's meta.json. */
export const MODEL_META_FORMAT = 'causalfusion-model';
/** The `format` of a multimodal model's meta.json. */
export const MULTIMODAL_META_FORMAT = 'causalfusion-multimodal-model';

/** How a model was made (recorded by apps/train): the command, steps, wall time, runtime; free-form beyond these. */
export interface TrainingRecord {
  command?: string;
  steps?: number;
  wallSeconds?: number;
  backend?: string;
  [key: string]: unknown;
}

/** meta.json of a class-conditional model: the dataset, the class names, the tokenizer, how it was trained. */
export interface ModelMeta {
  format: typeof MODEL_META_FORMAT;
  dataset: string;
  classNames: string[];
  tokenizer: PixelMeta | VaeMeta | LatentMeta;
  training?: TrainingRecord;
  /** Sampling defaults measured on this model (bench:quality); a flag the user passes wins. */
  sampling?: SamplingDefaults;
  /** `"classify"` in a classifier folder (`causalfusion finetune --task classify`), which sample and edit refuse; absent in a generative model's. */
  task?: 'classify';
}

/** A model's own sampling defaults for `sample` / `edit` when the flag is not given. */
export interface SamplingDefaults {
  sampler?: 'ddpm' | 'ddim';
  /** A respacing of the 1000 training steps, e.g. "50" or "250". */
  steps?: string;
  /** CFG scale of `sample` (`edit` keeps its own stronger default). */
  cfg?: number;
}

/** A pixel-space model: images of imageSize x imageSize x channels in [-1, 1], patchSize-pixel patches. */
export interface PixelMeta {
  kind: 'pixel';
  imageSize: number;
  channels: number;
  patchSize: number;
  range: [number, number];
}

/** A latent-space model: the VAE folder (absolute, or relative to the model folder) and its geometry. */
export interface VaeMeta {
  kind: 'vae';
  dir: string;
  name?: string;
  scale: number;
  latentChannels: number;
  latentSize: number;
  imageSize: number;
  patchSize: number;
}

/**
 * A latent-space model whose VAE is not recorded (a model converted from an official PyTorch checkpoint,
 * which does not name its VAE): sample / edit take the VAE with `--tokenizer vae:DIR`.
 */
export interface LatentMeta {
  kind: 'latent';
  latentChannels: number;
  latentSize: number;
  patchSize: number;
}

/** meta.json of a multimodal model: the dataset, the words a prompt may use, how it was trained. */
export interface MultimodalMeta {
  format: typeof MULTIMODAL_META_FORMAT;
  dataset: string;
  words: string[];
  training?: TrainingRecord;
  /** `generate`'s defaults measured on this model (bench:multimodal); a flag the user passes wins. */
  sampling?: MultimodalSamplingDefaults;
}

/** A multimodal model's own text-to-image defaults: the sampler, S_eval, diffusion steps per AR step, CFG scale. */
export interface MultimodalSamplingDefaults {
  sampler?: 'ddpm' | 'ddim';
  arSteps?: number;
  steps?: number;
  cfg?: number;
}

/**
 * Check a class model's meta.json field by field; the Error names the file and the field (a hand-written
 * one gets a message that says what is wrong).
 */
export function parseModelMeta(json: unknown, file: string): ModelMeta {
  const m = json as Partial<ModelMeta> | null;
  if (m === null || typeof m !== 'object' || Array.isArray(m)) throw new Error(`${file}: expected a JSON object`);
  if (m.format !== MODEL_META_FORMAT) throw new Error(`${file}: "format" must be "${MODEL_META_FORMAT}", got ${JSON.stringify(m.format)}`);
  if (!Array.isArray(m.classNames) || m.classNames.length === 0 || !m.classNames.every((c) => typeof c === 'string')) {
    throw new Error(`${file}: "classNames" must be a non-empty list of strings`);
  }
  const t = m.tokenizer;
  const positive = (keys: readonly string[]) => {
    for (const k of keys) {
      const v = (t as unknown as Record<string, unknown>)[k];
      if (!Number.isInteger(v) || (v as number) < 1) throw new Error(`${file}: "tokenizer.${k}" must be a positive integer, got ${JSON.stringify(v)}`);
    }
  };
  if (t && t.kind === 'vae') {
    if (typeof t.dir !== 'string' || t.dir === '') throw new Error(`${file}: "tokenizer.dir" must be the VAE folder`);
    if (typeof t.scale !== 'number' || !(t.scale > 0)) throw new Error(`${file}: "tokenizer.scale" must be a positive number (the VAE's scale factor)`);
    positive(['latentChannels', 'latentSize', 'imageSize', 'patchSize']);
  } else if (t && t.kind === 'latent') {
    positive(['latentChannels', 'latentSize', 'patchSize']);
  } else {
    if (!t || t.kind !== 'pixel')
      throw new Error(`${file}: "tokenizer.kind" must be "pixel", "vae" or "latent", got ${JSON.stringify((t as { kind?: unknown } | undefined)?.kind)}`);
    positive(['imageSize', 'channels', 'patchSize']);
    if (t.range && (t.range[0] !== -1 || t.range[1] !== 1)) {
      throw new Error(`${file}: "tokenizer.range" must be [-1, 1] (the pixel tokenizer's scale), got ${JSON.stringify(t.range)}`);
    }
  }
  const sp = m.sampling as Record<string, unknown> | undefined;
  if (sp !== undefined) {
    if (sp === null || typeof sp !== 'object' || Array.isArray(sp))
      throw new Error(`${file}: "sampling" must be an object like {"sampler": "ddim", "steps": "50", "cfg": 2}`);
    if (sp.sampler !== undefined && sp.sampler !== 'ddpm' && sp.sampler !== 'ddim')
      throw new Error(`${file}: "sampling.sampler" must be "ddpm" or "ddim", got ${JSON.stringify(sp.sampler)}`);
    if (sp.steps !== undefined && (typeof sp.steps !== 'string' || sp.steps.trim() === ''))
      throw new Error(`${file}: "sampling.steps" must be a respacing string such as "50", got ${JSON.stringify(sp.steps)}`);
    if (sp.cfg !== undefined && !(typeof sp.cfg === 'number' && sp.cfg >= 1 && Number.isFinite(sp.cfg)))
      throw new Error(`${file}: "sampling.cfg" must be a number >= 1, got ${JSON.stringify(sp.cfg)}`);
  }
  return { ...m, dataset: String(m.dataset ?? 'unknown') } as ModelMeta;
}

/** Check a multimodal model's meta.json (format, dataset, words, sampling defaults). */
export function parseMultimodalMeta(json: unknown, file: string): MultimodalMeta {
  const m = json as Partial<MultimodalMeta> | null;
  if (m === null || typeof m !== 'object' || Array.isArray(m)) throw new Error(`${file}: expected a JSON object`);
  if (m.format !== MULTIMODAL_META_FORMAT) throw new Error(`${file}: "format" must be "${MULTIMODAL_META_FORMAT}", got ${JSON.stringify(m.format)}`);
  if (!Array.isArray(m.words) || !m.words.every((w) => typeof w === 'string')) throw new Error(`${file}: "words" must be a list of strings`);
  const sp = m.sampling as Record<string, unknown> | undefined;
  if (sp !== undefined) {
    if (sp === null || typeof sp !== 'object' || Array.isArray(sp))
      throw new Error(`${file}: "sampling" must be an object like {"sampler": "ddim", "arSteps": 1, "steps": 50, "cfg": 2}`);
    if (sp.sampler !== undefined && sp.sampler !== 'ddpm' && sp.sampler !== 'ddim')
      throw new Error(`${file}: "sampling.sampler" must be "ddpm" or "ddim", got ${JSON.stringify(sp.sampler)}`);
    for (const k of ['arSteps', 'steps'])
      if (sp[k] !== undefined && !(Number.isInteger(sp[k]) && (sp[k] as number) >= 1))
        throw new Error(`${file}: "sampling.${k}" must be a positive integer, got ${JSON.stringify(sp[k])}`);
    if (sp.cfg !== undefined && !(typeof sp.cfg === 'number' && sp.cfg >= 1 && Number.isFinite(sp.cfg)))
      throw new Error(`${file}: "sampling.cfg" must be a number >= 1, got ${JSON.stringify(sp.cfg)}`);
  }
  return { ...m, dataset: String(m.dataset ?? 'unknown') } as MultimodalMeta;
}

/** What a model folder holds: the weights (official keys and layout), config.json, meta.json, optionally tokenizer.json. */
export interface ModelFolderFiles {
  weights: StateDict;
  config: Record<string, unknown>;
  meta?: ModelMeta | MultimodalMeta;
  /** tokenizer.json (a multimodal model's caption BPE). */
  tokenizer?: unknown;
}

/** Write a model folder, file by file atomically (the weights carry config.json in their metadata). */
export function writeModelFolder(dir: string, files: ModelFolderFiles): void {
  makeDirs(dir);
  const json = (value: unknown, indent = 2) => JSON.stringify(value, null, indent) + '\n';
  writeSafetensors(path.join(dir, WEIGHTS_FILE), files.weights, { format: 'pt', config: JSON.stringify(files.config) });
  writeFileAtomic(path.join(dir, CONFIG_FILE), json(files.config));
  if (files.tokenizer !== undefined) writeFileAtomic(path.join(dir, TOKENIZER_FILE), JSON.stringify(files.tokenizer) + '\n');
  if (files.meta) writeFileAtomic(path.join(dir, META_FILE), json(files.meta));
}
