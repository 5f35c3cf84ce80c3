/**
 * A model folder, as `causalfusion sample / edit / info` load it: `model.safetensors` + `config.json`
 * (from `saveModel` of @causalfusion/transformer) and `meta.json` (dataset, class names, the tokenizer:
 * pixel geometry, or the VAE folder of a latent-space model; how it was trained). The JSON files are read
 * and checked first, without tfjs or onnxruntime, so that bad input is reported before anything starts.
 * `--model` may also name an official PyTorch checkpoint (`ckpt.pt`): it is read in memory (./official).
 */
import * as fs from 'fs';
import * as path from 'path';
import * as os from 'os';
import { BACKEND_NAMES, initBackend, type BackendName } from '@causalfusion/backend';
import type { Denoiser } from '@causalfusion/sampler';
import { PixelTokenizer } from '@causalfusion/data';
import { latentSizeOf, loadVae, readVaeConfig, VaeTokenizer, type Vae } from '@causalfusion/vae';
import { CONFIG_FILE, WEIGHTS_FILE } from '@causalfusion/config';
import { configFromJson, derived, type ModelConfig } from '@causalfusion/config';
import type { CausalDiffusionModel } from '@causalfusion/transformer';
import type { NamedTensor } from '@causalfusion/safetensors';
import { UsageError } from './errors';
import { boundedInt, LIMITS } from './limits';
import { describeWeights, readOfficialCheckpoint } from './official';

export const META_FILE = 'meta.json';

/** Where the model shipped with the CLI lives: next to dist/, so it is found wherever the CLI is installed. */
export const DEFAULT_MODEL_DIR = path.resolve(__dirname, '../assets/default-model');

/** The command that produces a model folder (apps/train, exported with --export). */
export const TRAIN_HINT = 'pnpm cf train --out runs/mnist --export apps/cli/assets/default-model';

export interface ModelMeta {
  format: 'causalfusion-model';
  dataset: string;
  classNames: string[];
  tokenizer: PixelMeta | VaeMeta | LatentMeta;
  /** How the weights were made (command, steps, wall time, backend, ...); free-form beyond these. */
  training?: Record<string, unknown>;
}

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
 * which does not name its VAE): sample / edit take the VAE with `--tokenizer vae:DIR` (or `pixel` for a
 * 1- or 3-channel model); info and export need none.
 */
export interface LatentMeta {
  kind: 'latent';
  latentChannels: number;
  latentSize: number;
  patchSize: number;
}

/**
 * Images <-> tokens for a model: the pixel tokenizer, or a VAE (loaded on first use, through onnxruntime).
 * Images are uint8 NHWC of `imageSize` x `imageSize` x `channels`.
 */
export interface ImageCodec {
  /** 'none': a latent-space model read without its VAE (info, export): encode and decode refuse. */
  readonly kind: 'pixel' | 'vae' | 'none';
  readonly imageSize: number;
  readonly channels: number;
  readonly grid: number;
  readonly numTokens: number;
  /** Image pixels along a token's side (the patch, times the VAE's downsampling): for edit masks. */
  readonly pixelsPerToken: number;
  encode(images: Uint8Array): Promise<Float32Array>;
  decode(tokens: ArrayLike<number>): Promise<Uint8Array>;
  close(): Promise<void>;
}

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

function pixelCodec(t: PixelMeta): ImageCodec {
  const tok = new PixelTokenizer({ imageSize: t.imageSize, channels: t.channels, patchSize: t.patchSize });
  return {
    kind: 'pixel', imageSize: t.imageSize, channels: t.channels, grid: tok.grid, numTokens: tok.numTokens, pixelsPerToken: t.patchSize,
    encode: async (images) => tok.encode(images),
    decode: async (tokens) => tok.decode(tokens),
    close: async () => {},
  };
}

/** The codec of a model read without its VAE: the geometry, and a clear error if images are asked for. */
function noCodec(where: string, config: ModelConfig): ImageCodec {
  const d = derived(config);
  const refuse = async (): Promise<never> => {
    throw new UsageError(`${where}: the model's VAE is not known; give it with --tokenizer vae:DIR`);
  };
  return {
    kind: 'none', imageSize: config.inputSize, channels: config.latentChannels, grid: d.grid, numTokens: d.numTokens, pixelsPerToken: config.patchSize,
    encode: refuse, decode: refuse, close: async () => {},
  };
}

/** The VAE codec; `threads` is onnxruntime's, as the model's. */
export function vaeCodec(dir: string, t: VaeMeta, threads?: number): ImageCodec {
  let vae: Promise<Vae> | null = null;
  const tokenizer = async () => {
    vae ??= loadVae(dir, { threads }).catch((e) => {
      throw new UsageError(`the VAE ${dir}: ${(e as Error).message.split('\n')[0]}`);
    });
    return new VaeTokenizer(await vae, t.patchSize);
  };
  const grid = t.latentSize / t.patchSize;
  return {
    kind: 'vae', imageSize: t.imageSize, channels: 3, grid, numTokens: grid * grid, pixelsPerToken: t.imageSize / grid,
    encode: async (images) => (await tokenizer()).encode(images),
    decode: async (tokens) => (await tokenizer()).decode(tokens),
    close: async () => {
      if (vae) await (await vae).release();
      vae = null;
    },
  };
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

/** Check meta.json field by field, so a hand-written one gets a message that says what is wrong. */
function parseMeta(json: unknown, file: string): ModelMeta {
  const m = json as Partial<ModelMeta> | null;
  if (m === null || typeof m !== 'object' || Array.isArray(m)) throw new UsageError(`${file}: expected a JSON object`);
  if (m.format !== 'causalfusion-model') throw new UsageError(`${file}: "format" must be "causalfusion-model", got ${JSON.stringify(m.format)}`);
  if (!Array.isArray(m.classNames) || m.classNames.length === 0 || !m.classNames.every((c) => typeof c === 'string')) {
    throw new UsageError(`${file}: "classNames" must be a non-empty list of strings`);
  }
  const t = m.tokenizer;
  if (t && t.kind === 'vae') {
    if (typeof t.dir !== 'string' || t.dir === '') throw new UsageError(`${file}: "tokenizer.dir" must be the VAE folder`);
    if (typeof t.scale !== 'number' || !(t.scale > 0)) throw new UsageError(`${file}: "tokenizer.scale" must be a positive number (the VAE's scale factor)`);
    for (const k of ['latentChannels', 'latentSize', 'imageSize', 'patchSize'] as const) {
      if (!Number.isInteger(t[k]) || t[k] < 1) throw new UsageError(`${file}: "tokenizer.${k}" must be a positive integer, got ${JSON.stringify(t[k])}`);
    }
    return { ...m, dataset: String(m.dataset ?? 'unknown') } as ModelMeta;
  }
  if (t && t.kind === 'latent') {
    for (const k of ['latentChannels', 'latentSize', 'patchSize'] as const) {
      if (!Number.isInteger(t[k]) || t[k] < 1) throw new UsageError(`${file}: "tokenizer.${k}" must be a positive integer, got ${JSON.stringify(t[k])}`);
    }
    return { ...m, dataset: String(m.dataset ?? 'unknown') } as ModelMeta;
  }
  if (!t || t.kind !== 'pixel') throw new UsageError(`${file}: "tokenizer.kind" must be "pixel", "vae" or "latent", got ${JSON.stringify((t as { kind?: unknown } | undefined)?.kind)}`);
  for (const k of ['imageSize', 'channels', 'patchSize'] as const) {
    if (!Number.isInteger(t[k]) || t[k] < 1) throw new UsageError(`${file}: "tokenizer.${k}" must be a positive integer, got ${JSON.stringify(t[k])}`);
  }
  if (t.range && (t.range[0] !== -1 || t.range[1] !== 1)) {
    throw new UsageError(`${file}: "tokenizer.range" must be [-1, 1] (the pixel tokenizer's scale), got ${JSON.stringify(t.range)}`);
  }
  return { ...m, dataset: String(m.dataset ?? 'unknown') } as ModelMeta;
}

/**
 * Read and check a model folder's JSON files (the weights are loaded later by {@link loadWeights}).
 * `dir` undefined means the shipped default model. `dir` may also be an official PyTorch checkpoint
 * (`ckpt.pt`): it is read in memory, its config from its args (an official preset) or a config.json
 * beside it ({@link readCheckpointModel}).
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
      throw new UsageError(`--model: ${dir} is a weights file; give its model folder (${WEIGHTS_FILE}, ${CONFIG_FILE} and ${META_FILE}) or a PyTorch checkpoint (.pt)`);
    }
    return readCheckpointModel(folder, tokenizerFlag, options);
  }
  if (!fs.existsSync(path.join(folder, WEIGHTS_FILE))) {
    if (isDefault) {
      throw new UsageError(`no default model at ${folder}: it has not been trained yet; train one with \`${TRAIN_HINT}\`, or pass --model DIR`);
    }
    if (!stat) throw new UsageError(`--model: ${folder} does not exist`);
    throw new UsageError(`--model: ${folder} has no ${WEIGHTS_FILE}; a model folder holds ${WEIGHTS_FILE}, ${CONFIG_FILE} and ${META_FILE} (or give a PyTorch checkpoint, ckpt.pt)`);
  }
  const meta = parseMeta(readJson(path.join(folder, META_FILE)), path.join(folder, META_FILE));
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
  return { dir: folder, isDefault, config, ...resolveTokenizer(folder, meta, config, tokenizerFlag, options, `${folder}: ${META_FILE} does not record its VAE`) };
}

/** `--model ckpt.pt`: an official checkpoint read in memory (the EMA weights), as a model folder. */
function readCheckpointModel(file: string, tokenizerFlag: string | undefined, options: ReadModelOptions): ModelFolder {
  const ckpt = readOfficialCheckpoint(file, { mode: 'model', flag: '--model' });
  const meta = officialMeta(ckpt.config, { source: file, weights: describeWeights(ckpt), config: ckpt.configSource });
  return {
    dir: file, isDefault: false, config: ckpt.config, weights: ckpt.weights,
    ...resolveTokenizer(file, meta, ckpt.config, tokenizerFlag, options, `${file} is a PyTorch checkpoint, which does not name its VAE`),
  };
}

/**
 * meta.json of a model made from an official checkpoint: classes by index, and the tokenizer `tokenizer`
 * (default: a latent-space model whose VAE is not recorded).
 */
export function officialMeta(config: ModelConfig, training: Record<string, unknown>, tokenizer?: PixelMeta | VaeMeta | LatentMeta): ModelMeta {
  return {
    format: 'causalfusion-model',
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
  return { kind: 'vae', dir, name: vae.name, scale: vae.scaleFactor, latentChannels: vae.latentChannels, latentSize: size, imageSize: vae.imageSize, patchSize: config.patchSize };
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
    const hint = flag ? '' : ' (the model\'s meta.json names it; point at its new place with --tokenizer vae:DIR)';
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

/** Parse --backend before anything starts, so a typo is a usage error rather than a failed start. */
export function parseBackend(name: string | undefined): BackendName | undefined {
  if (name === undefined) return undefined;
  if (!(BACKEND_NAMES as readonly string[]).includes(name)) {
    throw new UsageError(`--backend: unknown backend '${name}'; use one of ${BACKEND_NAMES.join(', ')}`);
  }
  return name as BackendName;
}

/** Start the tfjs backend (quietly: the CLI reports it in its own status line) and load the weights. */
export async function loadWeights(
  folder: ModelFolder,
  backend: BackendName | undefined,
): Promise<{ model: CausalDiffusionModel; backend: string }> {
  const name = await initBackend({ backend, quiet: true });
  // tfjs is loaded only on this path: the ORT path starts without it
  const { loadModel, CausalDiffusionModel } = await import('@causalfusion/transformer');
  if (folder.weights) {
    // a PyTorch checkpoint, read in memory (checked against the config already)
    const model = new CausalDiffusionModel(folder.config);
    try {
      model.loadStateDict(folder.weights, folder.dir);
    } catch (e) {
      model.dispose();
      throw new UsageError(`${folder.dir}: cannot load the weights: ${(e as Error).message.split('\n')[0]}`);
    }
    return { model, backend: name };
  }
  try {
    return { model: await loadModel(folder.dir), backend: name };
  } catch (e) {
    // A checkpoint that does not match its config (or a damaged file) is the folder's problem: say which.
    throw new UsageError(`${folder.dir}: cannot load the weights: ${(e as Error).message.split('\n')[0]}`);
  }
}

/** One line saying which model runs where, for stderr. */
export function modelLine(folder: ModelFolder, runtime: string): string {
  const source = folder.isDefault ? 'default model' : 'model';
  return `${source} ${folder.dir} (${folder.meta.dataset}, ${describeGeometry(folder.config)}) on ${runtime}`;
}

export const RUNTIMES = ['ort', 'tfjs'] as const;
export type Runtime = (typeof RUNTIMES)[number];

/** How to run the model: onnxruntime (fast, the default) or tfjs, and their settings. */
export interface RuntimeFlags {
  runtime?: string;
  device?: string;
  threads?: string;
  workers?: string;
  backend?: string;
}

export interface RuntimeSettings {
  runtime: Runtime;
  device: 'cpu' | 'cuda';
  threads: number;
  /** ORT engines the rows are split over (one on the main thread, the others in worker_threads). */
  workers: number;
  backend: BackendName | undefined;
}

/** Check the runtime flags before anything starts. */
export function parseRuntimeFlags(flags: RuntimeFlags): RuntimeSettings {
  const runtime = (flags.runtime ?? 'ort') as Runtime;
  if (!RUNTIMES.includes(runtime)) throw new UsageError(`--runtime: unknown runtime '${flags.runtime}'; use ort (onnxruntime-node, fast) or tfjs`);
  const device = (flags.device ?? 'cpu') as 'cpu' | 'cuda';
  if (device !== 'cpu' && device !== 'cuda') throw new UsageError(`--device: expected cpu or cuda, got '${flags.device}'`);
  if (device === 'cuda' && runtime !== 'ort') throw new UsageError('--device cuda needs --runtime ort (tfjs runs on its backend; see --backend)');
  const count = (value: string | undefined, flag: string, fallback: number): number =>
    value === undefined ? fallback : boundedInt(value, flag, LIMITS.threads);
  const threads = count(flags.threads, '--threads', Math.min(os.availableParallelism(), 4));
  const workers = count(flags.workers, '--workers', device === 'cuda' ? 1 : threads);
  if (flags.workers !== undefined && runtime !== 'ort') throw new UsageError('--workers splits the rows over onnxruntimes; it needs --runtime ort');
  if (flags.backend !== undefined && runtime !== 'tfjs') throw new UsageError('--backend picks the tfjs backend; add --runtime tfjs');
  return { runtime, device, threads, workers, backend: parseBackend(flags.backend) };
}

/** A model ready to sample: the Denoiser, a line saying where it runs, and how to free it. */
export interface OpenedModel {
  denoiser: Denoiser<number>;
  where: string;
  close(): Promise<void>;
}

/** Load a model folder on the chosen runtime. */
export async function openModel(folder: ModelFolder, settings: RuntimeSettings): Promise<OpenedModel> {
  if (settings.runtime === 'tfjs') {
    const loaded = await loadWeights(folder, settings.backend);
    const { TransformerDenoiser } = await import('@causalfusion/transformer');
    return { denoiser: new TransformerDenoiser(loaded.model), where: `tfjs ${loaded.backend}`, close: async () => loaded.model.dispose() };
  }
  const { OrtDenoiser } = await import('@causalfusion/onnx');
  let denoiser;
  try {
    const ortOptions = { device: settings.device, threads: settings.threads, workers: settings.workers };
    denoiser = folder.weights
      ? await OrtDenoiser.fromWeights(folder.config, folder.weights, ortOptions)
      : await OrtDenoiser.load(folder.dir, ortOptions);
  } catch (e) {
    throw new UsageError(`${folder.dir}: ${(e as Error).message.split('\n')[0]}`);
  }
  const perWorker = Math.max(1, Math.floor(settings.threads / settings.workers));
  const where =
    settings.workers === 1
      ? `onnxruntime ${settings.device}, ${settings.threads} thread(s)`
      : `onnxruntime ${settings.device}, rows split over ${settings.workers} onnxruntimes x ${perWorker} thread(s)`;
  return { denoiser, where, close: () => denoiser.release() };
}
