/**
 * Classifier model folders (what `causalfusion finetune --task classify` exports and `causalfusion
 * classify` loads): a generative model folder (model.safetensors + config.json: the fine-tuned backbone,
 * still a complete model) plus `head.safetensors` (the classification head, `cls_head.*`, official layout)
 * and a meta.json with `task: "classify"`, the label names and the pixel tokenizer. {@link OrtClassifier}
 * runs one on onnxruntime-node.
 *
 * ```ts
 * const classifier = await OrtClassifier.load('models/fashion-probe', { threads: 2 });
 * const { labels, probs } = await classifier.classifyTokens(pixelTokenizer(classifier.tokenizer).encode(images)); // @causalfusion/data
 * ```
 */
import * as fs from 'fs';
import * as path from 'path';
import { makeDirs, readSafetensors, writeFileAtomic, writeSafetensors } from '@causalfusion/safetensors';
import {
  CONFIG_FILE,
  configToJson,
  derived,
  META_FILE,
  officialStateDict,
  toTrainingLayout,
  trainingArrays,
  WEIGHTS_FILE,
  type ModelConfig,
} from '@causalfusion/config';
import { classifyEntries, classifyHeadEntries, HEAD_PREFIX, type ClassifyEntry } from './classify-graph';
import { OrtClassifySession, predictions } from './classify-trainer';
import { readModelFolder } from './weights';

export const HEAD_FILE = 'head.safetensors';

/** The pixel tokenizer of a model folder's meta.json. */
export interface PixelTokenizerMeta {
  kind: 'pixel';
  imageSize: number;
  channels: 1 | 3;
  patchSize: number;
}

/** A classifier as its holders keep it: every parameter in classifyEntries order, training layout. */
export interface ClassifierWeights {
  config: ModelConfig;
  classNames: string[];
  params: Float32Array[];
}

/**
 * A fresh head: LayerNorm weight 1, bias 0; the Linear's weight N(0, 0.01^2) from `draw` (a standard normal
 * source), bias 0 (as MAE's linear-probe head). Training layout, classifyHeadEntries order.
 */
export function initialHead(hiddenSize: number, numLabels: number, draw: () => number): Float32Array[] {
  const D = hiddenSize;
  const fc = new Float32Array(D * numLabels);
  for (let i = 0; i < fc.length; i++) fc[i] = 0.01 * draw();
  return [new Float32Array(D).fill(1), new Float32Array(D), fc, new Float32Array(numLabels)];
}

/** Read and check a head file against the model and the number of labels; training layout. */
export function readHead(file: string, hiddenSize: number, numLabels: number): Float32Array[] {
  const tensors = readSafetensors(file).tensors;
  const entries = classifyHeadEntries(hiddenSize, numLabels);
  for (const key of tensors.keys()) {
    if (!entries.some((e) => e.key === key)) throw new Error(`${file}: unexpected tensor ${key}; a head holds ${entries.map((e) => e.key).join(', ')}`);
  }
  return entries.map((e) => {
    const t = tensors.get(e.key);
    if (!t) throw new Error(`${file} lacks ${e.key}`);
    if (JSON.stringify(t.shape) !== JSON.stringify(e.officialShape)) {
      throw new Error(
        `${file}: ${e.key} has shape [${t.shape.join(', ')}], expected [${e.officialShape.join(', ')}] (${numLabels} labels, width ${hiddenSize})`,
      );
    }
    for (let i = 0; i < t.data.length; i++) if (!Number.isFinite(t.data[i])) throw new Error(`${file}: ${e.key}[${i}] is ${t.data[i]}`);
    return toTrainingLayout(e, t.data);
  });
}

/**
 * Write a classifier folder: model.safetensors + config.json (the backbone as a generative model folder),
 * head.safetensors and meta.json (`meta` plus format, task, classNames, tokenizer and the head's shape).
 */
export function writeClassifierFolder(dir: string, weights: ClassifierWeights, tokenizer: PixelTokenizerMeta, meta: Record<string, unknown>): void {
  const { config, classNames, params } = weights;
  const entries = classifyEntries(config, classNames.length);
  if (params.length !== entries.length) throw new Error(`writeClassifierFolder: ${params.length} arrays for ${entries.length} parameters`);
  makeDirs(dir);
  const isHead = (e: ClassifyEntry) => e.key.startsWith(HEAD_PREFIX);
  const backbone = entries.map((e, i) => [e, params[i]] as const).filter(([e]) => !isHead(e));
  const head = entries.map((e, i) => [e, params[i]] as const).filter(([e]) => isHead(e));
  const configJson = configToJson(config);
  writeSafetensors(
    path.join(dir, WEIGHTS_FILE),
    officialStateDict(
      backbone.map(([e]) => e),
      backbone.map(([, a]) => a),
    ),
    { format: 'pt', config: JSON.stringify(configJson) },
  );
  writeFileAtomic(path.join(dir, CONFIG_FILE), JSON.stringify(configJson, null, 2) + '\n');
  writeSafetensors(
    path.join(dir, HEAD_FILE),
    officialStateDict(
      head.map(([e]) => e),
      head.map(([, a]) => a),
    ),
    { format: 'pt' },
  );
  const full = {
    format: 'causalfusion-model',
    task: 'classify',
    ...meta,
    classNames: [...classNames],
    tokenizer,
    classifier: {
      numLabels: classNames.length,
      condition: 'null class',
      tokens: 'clean (no noise, no timestep), full attention',
      pool: 'mean over image tokens',
      head: 'LayerNorm + Linear',
    },
  };
  writeFileAtomic(path.join(dir, META_FILE), JSON.stringify(full, null, 2) + '\n');
}

/** meta.json of a model folder, parsed (an Error naming the file when it is missing or not JSON). */
export function readMeta(dir: string): Record<string, unknown> {
  const file = path.join(dir, META_FILE);
  if (!fs.existsSync(file)) throw new Error(`${dir} has no ${META_FILE}; give a model folder written by causalfusion train --export or finetune --export`);
  let json: unknown;
  try {
    json = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    throw new Error(`${file} is not JSON (${(e as Error).message.split('\n')[0]})`);
  }
  if (json === null || typeof json !== 'object' || Array.isArray(json)) throw new Error(`${file} is not a JSON object`);
  return json as Record<string, unknown>;
}

/** The pixel tokenizer a meta.json names; an Error for latent (VAE) models and malformed entries. */
export function pixelTokenizerOf(meta: Record<string, unknown>, where: string, config: ModelConfig): PixelTokenizerMeta {
  const t = meta.tokenizer as Record<string, unknown> | undefined;
  if (!t || typeof t !== 'object') throw new Error(`${where}: no tokenizer entry`);
  if (t.kind !== 'pixel') throw new Error(`${where}: a ${String(t.kind)} model; classification works on pixel models (no VAE) for now`);
  const { imageSize, channels, patchSize } = t as { imageSize: unknown; channels: unknown; patchSize: unknown };
  if (!Number.isInteger(imageSize) || (channels !== 1 && channels !== 3) || !Number.isInteger(patchSize))
    throw new Error(`${where}: tokenizer needs imageSize, channels (1 or 3) and patchSize`);
  if (imageSize !== config.inputSize || patchSize !== config.patchSize || channels !== config.latentChannels) {
    throw new Error(`${where}: the tokenizer (${String(imageSize)} px, patch ${String(patchSize)}, ${String(channels)} channels) does not match config.json`);
  }
  return { kind: 'pixel', imageSize: imageSize as number, channels: channels as 1 | 3, patchSize: patchSize as number };
}

/** A classifier folder: the config, label names, tokenizer and every parameter (classifyEntries order). */
export function readClassifierFolder(dir: string): ClassifierWeights & { tokenizer: PixelTokenizerMeta; meta: Record<string, unknown> } {
  if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory())
    throw new Error(`${dir} is not a folder; give a classifier folder written by causalfusion finetune --export`);
  const meta = readMeta(dir);
  const where = path.join(dir, META_FILE);
  if (meta.task !== 'classify') {
    throw new Error(
      `${dir} is a generative model (meta.json has no task "classify"); fine-tune it first: causalfusion finetune --task classify --model ${dir} ...`,
    );
  }
  const classNames = meta.classNames;
  if (!Array.isArray(classNames) || classNames.length < 2 || !classNames.every((c) => typeof c === 'string'))
    throw new Error(`${where}: classNames must list at least 2 label names`);
  const folder = readModelFolder(dir);
  const tokenizer = pixelTokenizerOf(meta, where, folder.config);
  if (derived(folder.config).nullClass === null) throw new Error(`${dir}: the model has no null class (class_dropout_prob 0); the classifier conditions on it`);
  const head = readHead(path.join(dir, HEAD_FILE), folder.config.hiddenSize, classNames.length);
  const backbone = classifyEntries(folder.config, classNames.length).filter((e) => !e.key.startsWith(HEAD_PREFIX));
  const params = [...trainingArrays(backbone, folder.weights), ...head];
  return { config: folder.config, classNames: classNames as string[], params, tokenizer, meta };
}

/** A classifier folder on onnxruntime-node. */
export class OrtClassifier {
  private constructor(
    readonly weights: ClassifierWeights & { tokenizer: PixelTokenizerMeta; meta: Record<string, unknown> },
    private readonly session: OrtClassifySession,
  ) {}

  static async load(dir: string, options: { threads?: number } = {}): Promise<OrtClassifier> {
    const weights = readClassifierFolder(dir);
    const session = await OrtClassifySession.create(weights.config, weights.classNames.length, { mode: 'infer', threads: options.threads });
    return new OrtClassifier(weights, session);
  }

  get classNames(): string[] {
    return this.weights.classNames;
  }

  get tokenizer(): PixelTokenizerMeta {
    return this.weights.tokenizer;
  }

  /** [N, K] logits of tokens [N, L, d] in [-1, 1], raster order (PixelTokenizer.encode). */
  logits(tokens: Float32Array): Promise<Float32Array> {
    return this.session.logits(this.weights.params, tokens);
  }

  /** The predicted label and its softmax probability per image of `tokens`. */
  async classifyTokens(tokens: Float32Array): Promise<{ labels: Int32Array; probs: Float32Array }> {
    return predictions(await this.logits(tokens), this.classNames.length);
  }

  release(): Promise<void> {
    return this.session.release();
  }
}
