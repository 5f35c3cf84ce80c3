/**
 * A model folder, as `causalfusion sample / edit / info / export` read it: `model.safetensors` + `config.json`
 * and `meta.json` (the schema of @causalfusion/config, written by apps/train: dataset, class names, the
 * tokenizer (pixel geometry, or the VAE folder of a latent-space model), how it was trained). The JSON files
 * are read and checked first, without tfjs or onnxruntime, so that bad input is reported before anything
 * starts. `--model` may also name an official PyTorch checkpoint (`ckpt.pt`): it is read in memory (./official).
 */
import * as fs from 'fs';
import * as path from 'path';
import {
  CONFIG_FILE,
  configFromJson,
  derived,
  META_FILE,
  MODEL_META_FORMAT,
  parseModelMeta,
  WEIGHTS_FILE,
  type LatentMeta,
  type ModelConfig,
  type ModelMeta,
  type PixelMeta,
  type VaeMeta,
} from '@causalfusion/config';
import type { NamedTensor } from '@causalfusion/safetensors';
import { latentSizeOf, readVaeConfig } from '@causalfusion/vae';
import { UsageError } from './errors';
import { noCodec, pixelCodec, vaeCodec, type ImageCodec } from './image-codecs';
import { describeWeights, readOfficialCheckpoint } from './official';

/** Where the model shipped with the CLI lives: next to dist/, so it is found wherever the CLI is installed. */
export const DEFAULT_MODEL_DIR = path.resolve(__dirname, '../assets/default-model');

/** The command that produces a model folder (apps/train, exported with --export). */
export const TRAIN_HINT = 'pnpm cf train --out runs/mnist --export apps/cli/assets/default-model';

export interface ModelFolder {
  dir: string;
  /** True when no --model was given and the shipped model is used. */
  isDefault: boolean;
  meta: ModelMeta;
  config: ModelConfig;
  tokenizer: ImageCodec;
  /** The VAE folder of a latent-space model (resolved), else null. */
  vaeDir: string | null;
  /**
   * The weights in memory (official keys, checked against `config`) when `dir` is a PyTorch checkpoint
   * rather than a model folder; undefined for a folder (its model.safetensors is read by the runtime).
   */
  weights?: Map<string, NamedTensor>;
}

/** How {@link readModelFolder} treats the tokenizer. */
export interface ReadModelOptions {
  /**
   * True (default) for commands that turn images into tokens and back (sample, edit): a latent-space
   * model without a recorded VAE is refused with the flag that gives it. False for info and export.
   */
  needsTokenizer?: boolean;
}

function readJson(file: string): unknown {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    throw new UsageError(`${file} is missing; a model folder holds ${WEIGHTS_FILE}, ${CONFIG_FILE} and ${META_FILE}`);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    // one line: V8's message quotes the text around the error, newlines included
    throw new UsageError(`${file} is not valid JSON (${(e as Error).message.replace(/\s+/g, ' ')})`);
  }
}

/** meta.json, checked field by field (@causalfusion/config's schema): a hand-written one gets a message that says what is wrong. */
function readMeta(file: string): ModelMeta {
  const json = readJson(file);
  try {
    return parseModelMeta(json, file);
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
}

/**
 * Read and check a model folder's JSON files (the weights are loaded later by {@link loadWeights}).
 * `dir` undefined means the shipped default model. `dir` may also be an official PyTorch checkpoint
 * (`ckpt.pt`): it is read in memory, its config from its args (an official preset) or a config.json
 * beside it ({@link readCheckpointModel}). A classifier folder (meta.json `task: "classify"`) is refused with
 * the command that reads it (`causalfusion classify`).
 */
export function readModelFolder(dir: string | undefined, tokenizerFlag?: string, options: ReadModelOptions = {}): ModelFolder {
  if (tokenizerFlag !== undefined && tokenizerFlag !== 'pixel' && !tokenizerFlag.startsWith('vae:')) {
    throw new UsageError(`--tokenizer: expected pixel or vae:DIR, got '${tokenizerFlag}'`);
  }
  const isDefault = dir === undefined;
  const folder = path.resolve(dir ?? DEFAULT_MODEL_DIR);
  let stat: fs.Stats | undefined;
  try {
    stat = isDefault ? undefined : fs.statSync(folder);
  } catch {
    stat = undefined; // missing, or under a file: said below
  }
  if (stat?.isFile()) {
    if (folder.endsWith('.safetensors')) {
      throw new UsageError(
        `--model: ${dir} is a weights file; give its model folder (${WEIGHTS_FILE}, ${CONFIG_FILE} and ${META_FILE}) or a PyTorch checkpoint (.pt)`,
      );
    }
    return readCheckpointModel(folder, tokenizerFlag, options);
  }
  if (!fs.existsSync(path.join(folder, WEIGHTS_FILE))) {
    if (isDefault) {
      throw new UsageError(`no default model at ${folder}: it has not been trained yet; train one with \`${TRAIN_HINT}\`, or pass --model DIR`);
    }
    if (!stat) throw new UsageError(`--model: ${folder} does not exist`);
    throw new UsageError(
      `--model: ${folder} has no ${WEIGHTS_FILE}; a model folder holds ${WEIGHTS_FILE}, ${CONFIG_FILE} and ${META_FILE} (or give a PyTorch checkpoint, ckpt.pt)`,
    );
  }
  const meta = readMeta(path.join(folder, META_FILE));
  if (meta.task === 'classify') {
    throw new UsageError(
      `--model: ${folder} is an image classifier (meta.json task "classify", written by causalfusion finetune --task classify), not a generative model; classify images with it: causalfusion classify --model ${folder} --input IMAGE`,
    );
  }
  const configFile = path.join(folder, CONFIG_FILE);
  let config: ModelConfig;
  try {
    config = configFromJson(readJson(configFile), configFile);
  } catch (e) {
    throw e instanceof UsageError ? e : new UsageError((e as Error).message);
  }
  if (meta.classNames.length !== config.numClasses) {
    throw new UsageError(`${folder}: ${META_FILE} names ${meta.classNames.length} classes but ${CONFIG_FILE} has num_classes ${config.numClasses}`);
  }
  return {
    dir: folder,
    isDefault,
    config,
    ...resolveTokenizer(folder, meta, config, tokenizerFlag, options, `${folder}: ${META_FILE} does not record its VAE`),
  };
}

/** `--model ckpt.pt`: an official checkpoint read in memory (the EMA weights), as a model folder. */
function readCheckpointModel(file: string, tokenizerFlag: string | undefined, options: ReadModelOptions): ModelFolder {
  const ckpt = readOfficialCheckpoint(file, { mode: 'model', flag: '--model' });
  const meta = officialMeta(ckpt.config, { source: file, weights: describeWeights(ckpt), config: ckpt.configSource });
  return {
    dir: file,
    isDefault: false,
    config: ckpt.config,
    weights: ckpt.weights,
    ...resolveTokenizer(file, meta, ckpt.config, tokenizerFlag, options, `${file} is a PyTorch checkpoint, which does not name its VAE`),
  };
}

/**
 * meta.json of a model made from an official checkpoint: classes by index, and the tokenizer `tokenizer`
 * (default: a latent-space model whose VAE is not recorded).
 */
export function officialMeta(config: ModelConfig, training: Record<string, unknown>, tokenizer?: PixelMeta | VaeMeta | LatentMeta): ModelMeta {
  return {
    format: MODEL_META_FORMAT,
    dataset: 'official-checkpoint',
    classNames: Array.from({ length: config.numClasses }, (_, i) => String(i)),
    tokenizer: tokenizer ?? { kind: 'latent', latentChannels: config.latentChannels, latentSize: config.inputSize, patchSize: config.patchSize },
    training,
  };
}

/**
 * The tokenizer meta a `--tokenizer` flag gives a model of `config` whose meta does not say: `pixel` (the
 * tokens are the pixels: 1 or 3 channels only) or `vae:DIR` (a VAE folder whose latents have the model's
 * channels and size; its name and scale factor are recorded). `where` names the model in errors.
 */
export function tokenizerMetaFor(flag: string, config: ModelConfig, where: string): PixelMeta | VaeMeta {
  const geometry = `${config.latentChannels}x${config.inputSize}x${config.inputSize}`;
  if (flag === 'pixel') {
    if (config.latentChannels !== 1 && config.latentChannels !== 3) {
      throw new UsageError(`--tokenizer pixel: ${where} takes ${geometry} latents, and images have 1 or 3 channels; give its VAE with --tokenizer vae:DIR`);
    }
    return { kind: 'pixel', imageSize: config.inputSize, channels: config.latentChannels, patchSize: config.patchSize, range: [-1, 1] };
  }
  if (!flag.startsWith('vae:') || flag.length === 4) throw new UsageError(`--tokenizer: expected pixel or vae:DIR, got '${flag}'`);
  const dir = path.resolve(flag.slice(4));
  let vae;
  try {
    vae = readVaeConfig(dir);
  } catch (e) {
    throw new UsageError(`--tokenizer: ${(e as Error).message.split('\n')[0]}`);
  }
  const size = latentSizeOf(vae);
  if (vae.latentChannels !== config.latentChannels || size !== config.inputSize) {
    throw new UsageError(
      `--tokenizer: the VAE ${dir} (${vae.name}) makes ${vae.latentChannels}x${size}x${size} latents of ${vae.imageSize}x${vae.imageSize} images, ` +
        `but ${where} takes ${geometry} (latent_channels ${config.latentChannels}, input_size ${config.inputSize}); give the VAE it was trained with`,
    );
  }
  return {
    kind: 'vae',
    dir,
    name: vae.name,
    scale: vae.scaleFactor,
    latentChannels: vae.latentChannels,
    latentSize: size,
    imageSize: vae.imageSize,
    patchSize: config.patchSize,
  };
}

/**
 * The codec of a model: as meta.json says (a `--tokenizer vae:DIR` moves a latent model's VAE), or, for a
 * model whose VAE is not recorded (`latent`), as `--tokenizer` says; without it, sample / edit are refused
 * (`unknown` says why) and info / export get a codec that refuses images.
 */
function resolveTokenizer(
  folder: string,
  meta: ModelMeta,
  config: ModelConfig,
  flag: string | undefined,
  options: ReadModelOptions,
  unknown: string,
): { meta: ModelMeta; tokenizer: ImageCodec; vaeDir: string | null } {
  let t = meta.tokenizer;
  if (t.kind === 'latent') {
    if (t.latentSize !== config.inputSize || t.patchSize !== config.patchSize || t.latentChannels !== config.latentChannels) {
      throw new UsageError(
        `${folder}: ${META_FILE} describes ${t.latentSize}x${t.latentSize}x${t.latentChannels} latents in ${t.patchSize}-wide patches but ` +
          `${CONFIG_FILE} has input_size ${config.inputSize}, latent_channels ${config.latentChannels}, patch_size ${config.patchSize}`,
      );
    }
    if (flag === undefined) {
      if (options.needsTokenizer === false) return { meta, tokenizer: noCodec(folder, config), vaeDir: null };
      const pixel = config.latentChannels === 1 || config.latentChannels === 3 ? ' (or --tokenizer pixel if its tokens are pixels)' : '';
      throw new UsageError(
        `${unknown}: a latent-space model of ${config.latentChannels}x${config.inputSize}x${config.inputSize} latents; ` +
          `give its VAE with --tokenizer vae:DIR (a folder made by \`causalfusion vae init\`)${pixel}`,
      );
    }
    t = tokenizerMetaFor(flag, config, folder);
    meta = { ...meta, tokenizer: t };
  } else if (flag !== undefined && (flag === 'pixel') !== (t.kind === 'pixel')) {
    throw new UsageError(`--tokenizer ${flag}: ${folder} is a ${t.kind === 'pixel' ? 'pixel' : 'latent-space (VAE)'} model`);
  }
  if (t.kind === 'vae') return { meta, ...openVaeTokenizer(folder, t, config, flag) };
  // The tokenizer and the transformer must agree on the geometry, or tokens would be scrambled.
  if (t.imageSize !== config.inputSize || t.patchSize !== config.patchSize || t.channels !== config.latentChannels) {
    throw new UsageError(
      `${folder}: ${META_FILE} describes ${t.imageSize}x${t.imageSize}x${t.channels} images in ${t.patchSize}-pixel patches but ` +
        `${CONFIG_FILE} has input_size ${config.inputSize}, latent_channels ${config.latentChannels}, patch_size ${config.patchSize}`,
    );
  }
  return { meta, tokenizer: pixelCodec(t), vaeDir: null };
}

/** Check a latent-space model's VAE folder against meta.json and config.json (no onnxruntime yet). */
function openVaeTokenizer(folder: string, t: VaeMeta, config: ModelConfig, flag: string | undefined): { tokenizer: ImageCodec; vaeDir: string } {
  const vaeDir = flag?.startsWith('vae:') ? path.resolve(flag.slice(4)) : path.resolve(folder, t.dir);
  let vae;
  try {
    vae = readVaeConfig(vaeDir);
  } catch (e) {
    const hint = flag ? '' : " (the model's meta.json names it; point at its new place with --tokenizer vae:DIR)";
    throw new UsageError(`${(e as Error).message}${hint}`);
  }
  const problems: string[] = [];
  if (vae.latentChannels !== t.latentChannels) problems.push(`${vae.latentChannels} latent channels, the model ${t.latentChannels}`);
  if (latentSizeOf(vae) !== t.latentSize) problems.push(`${latentSizeOf(vae)}-wide latents, the model ${t.latentSize}`);
  if (vae.scaleFactor !== t.scale) problems.push(`scale factor ${vae.scaleFactor}, the model ${t.scale}`);
  if (vae.imageSize !== t.imageSize) problems.push(`${vae.imageSize}-pixel images, the model ${t.imageSize}`);
  if (problems.length) throw new UsageError(`the VAE ${vaeDir} (${vae.name}) does not fit ${folder}: it has ${problems.join('; ')}`);
  if (t.latentSize !== config.inputSize || t.patchSize !== config.patchSize || t.latentChannels !== config.latentChannels) {
    throw new UsageError(
      `${folder}: ${META_FILE} describes ${t.latentSize}x${t.latentSize}x${t.latentChannels} latents in ${t.patchSize}-wide patches but ` +
        `${CONFIG_FILE} has input_size ${config.inputSize}, latent_channels ${config.latentChannels}, patch_size ${config.patchSize}`,
    );
  }
  return { tokenizer: vaeCodec(vaeDir, t), vaeDir };
}

/** The image and token geometry of a config, in words. */
export function describeGeometry(config: ModelConfig): string {
  const d = derived(config);
  return `${config.inputSize}x${config.inputSize}x${config.latentChannels} in ${config.patchSize}x${config.patchSize} patches: ${d.numTokens} tokens (${d.grid}x${d.grid}) of ${d.tokenDim} values`;
}

/**
 * Class arguments -> class indices. Each argument may hold several, comma-separated; each is a class
 * name from meta.json or an index. Names win over indices (for MNIST they agree anyway).
 */
export function resolveClasses(args: string[], meta: ModelMeta): number[] {
  const names = meta.classNames;
  const out: number[] = [];
  for (const raw of args.flatMap((a) => a.split(','))) {
    const arg = raw.trim();
    const byName = names.indexOf(arg);
    if (byName >= 0) {
      out.push(byName);
      continue;
    }
    const index = /^\d+$/.test(arg) ? Number(arg) : -1;
    if (index >= 0 && index < names.length) {
      out.push(index);
      continue;
    }
    const valid = names.map((n, i) => (n === String(i) ? n : `${i} (${n})`)).join(', ');
    throw new UsageError(`--class: unknown class '${arg}'; this ${meta.dataset} model knows ${valid}`);
  }
  if (out.length === 0) throw new UsageError('--class: give at least one class');
  return out;
}
