/**
 * Official PyTorch checkpoints (what the official train.py writes with `torch.save`, or a bare state_dict)
 * as models of the CLI, with no Python: read by @causalfusion/pt, which never executes the pickle (any
 * Python global beyond what a state_dict checkpoint holds is refused, never imported or run: the safety
 * difference from `torch.load`). The model config comes from `--config` (a config.json in the official
 * argument names), else from the checkpoint's `args` when `args.model` names an official preset
 * (CausalFusion-L / -XL / -H), else (for `--model ckpt.pt`) from a config.json beside the file; the
 * weights are checked against it.
 */
import * as fs from 'fs';
import * as path from 'path';
import { checkpointArgs, checkpointStateDict, readTorchCheckpoint, type TorchValue } from '@causalfusion/pt';
import type { NamedTensor } from '@causalfusion/safetensors';
import { checkStateDict, makeConfig, readConfigFile, type ModelConfig } from '@causalfusion/config';
import { statOrUndefined } from './outputs';
import { UsageError } from './errors';

/** The paper's models, as the official model_dict names them (args.model of train.py). */
export const OFFICIAL_PRESETS = ['CausalFusion-L', 'CausalFusion-XL', 'CausalFusion-H'] as const;

/** The official VAE (MAR's KL-16) turns an image into latents 16 times smaller. */
export const OFFICIAL_VAE_STRIDE = 16;

export type WeightsChoice = 'ema' | 'model';

export interface OfficialCheckpoint {
  /** The .pt file (absolute). */
  file: string;
  config: ModelConfig;
  /** Where the config came from, in words (a config.json path, or the args' preset). */
  configSource: string;
  /** Official key -> {shape, data}: float32 (float16 / bfloat16 converted exactly), checked against the config. */
  weights: Map<string, NamedTensor>;
  /** Which weights of train.py's layout were taken, or 'state_dict' for a bare state_dict. */
  which: WeightsChoice | 'state_dict';
  /** The storage types of those weights in the file (float32, float16, bfloat16, ...). */
  dtypes: string[];
  /** train.py's args (JSON-safe values only), or null. */
  args: Record<string, unknown> | null;
  /** train.py's train_steps, or null. */
  trainSteps: number | null;
}

/** --weights: ema (the default, what sample.py uses) or model. */
export function parseWeightsFlag(value: string | undefined): WeightsChoice {
  if (value === undefined) return 'ema';
  if (value !== 'ema' && value !== 'model') throw new UsageError(`--weights: expected ema or model, got '${value}'`);
  return value;
}

/** A message as one line: the lines of a multi-line Error joined (each trimmed), its own "Fix:" line replaced by `fix`. */
function oneLine(message: string, fix?: string): string {
  const lines = message
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !(fix && l.startsWith('Fix:')));
  return [...lines, ...(fix ? [fix] : [])].join(' ');
}

const get = (v: unknown, key: string): unknown =>
  v instanceof Map ? v.get(key) : typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>)[key] : undefined;
const isTensor = (v: unknown): v is { kind: 'tensor'; dtype: string } => typeof v === 'object' && v !== null && (v as { kind?: unknown }).kind === 'tensor';

/** train.py's layout ({"model", "ema", ...}) rather than a bare state_dict. */
function isTrainLayout(root: TorchValue): boolean {
  return ['model', 'ema'].some((k) => {
    const v = get(root, k);
    return v !== undefined && !isTensor(v);
  });
}

/** The storage types of the chosen state_dict's tensors. */
function dtypesOf(dict: unknown): string[] {
  const values = dict instanceof Map ? [...dict.values()] : typeof dict === 'object' && dict !== null ? Object.values(dict) : [];
  return [...new Set(values.filter(isTensor).map((t) => t.dtype))];
}

/** Keep the JSON-safe values of train.py's args (strings, numbers, booleans, null, and lists of them). */
function jsonSafe(args: Record<string, unknown> | null): Record<string, unknown> | null {
  if (!args) return null;
  const ok = (v: unknown): boolean => v === null || ['string', 'boolean'].includes(typeof v) || (typeof v === 'number' && Number.isFinite(v));
  return Object.fromEntries(Object.entries(args).filter(([, v]) => ok(v) || (Array.isArray(v) && v.every(ok))));
}

/**
 * The config an official checkpoint's args describe: `args.model` an official preset, `args.image_size` the
 * image side (the latent is image_size / 16), `args.num_classes` (default 1000). Else why not, in words.
 */
export function configFromArgs(args: Record<string, unknown> | null): { config: ModelConfig; source: string } | { reason: string } {
  if (!args) return { reason: 'it holds no train.py args (a bare state_dict)' };
  const model = args.model;
  if (typeof model !== 'string' || !(OFFICIAL_PRESETS as readonly string[]).includes(model)) {
    return { reason: `its args name the model ${JSON.stringify(model ?? null)}, not an official preset (${OFFICIAL_PRESETS.join(', ')})` };
  }
  const imageSize = args.image_size;
  if (typeof imageSize !== 'number' || !Number.isInteger(imageSize) || imageSize < OFFICIAL_VAE_STRIDE || imageSize % OFFICIAL_VAE_STRIDE !== 0) {
    return { reason: `its args give image_size ${JSON.stringify(imageSize ?? null)}, not a multiple of ${OFFICIAL_VAE_STRIDE}` };
  }
  const numClasses = typeof args.num_classes === 'number' && Number.isInteger(args.num_classes) && args.num_classes > 0 ? args.num_classes : 1000;
  try {
    const config = makeConfig(model as (typeof OFFICIAL_PRESETS)[number], { inputSize: imageSize / OFFICIAL_VAE_STRIDE, numClasses });
    return { config, source: `its args (${model}, image_size ${imageSize}, num_classes ${numClasses})` };
  } catch (e) {
    return { reason: `its args do not make a valid config (${(e as Error).message})` };
  }
}

export interface ReadOfficialOptions {
  /** ema (default) or model, for train.py's layout; a bare state_dict is taken whole. */
  weights?: WeightsChoice;
  /** A config.json that wins over the args (convert's --config). */
  configFile?: string;
  /**
   * 'convert': the config is --config, else the args' preset. 'model' (--model ckpt.pt): the args' preset,
   * else a config.json beside the file. The error when there is none names the fix for each.
   */
  mode: 'convert' | 'model';
  /** The flag that named the file, for messages. */
  flag: string;
}

/** Read an official checkpoint, its config and its weights, checked; every problem is one UsageError line. */
export function readOfficialCheckpoint(file: string, options: ReadOfficialOptions): OfficialCheckpoint {
  const abs = path.resolve(file);
  const stat = statOrUndefined(abs);
  if (!stat) throw new UsageError(`${options.flag}: ${file} does not exist`);
  if (!stat.isFile()) throw new UsageError(`${options.flag}: ${file} is not a file; give a PyTorch checkpoint (.pt) as torch.save writes it`);
  // the config file is checked before the checkpoint is read: a typo is reported at once
  let explicit: ModelConfig | undefined;
  if (options.configFile !== undefined) {
    if (!fs.existsSync(options.configFile)) throw new UsageError(`--config: ${options.configFile} does not exist`);
    try {
      explicit = readConfigFile(options.configFile);
    } catch (e) {
      throw new UsageError(`--config: ${oneLine((e as Error).message)}`);
    }
  }
  let root: TorchValue;
  try {
    root = readTorchCheckpoint(abs).root;
  } catch (e) {
    throw new UsageError(oneLine((e as Error).message));
  }
  const which = options.weights ?? 'ema';
  let weights: Map<string, NamedTensor>;
  try {
    weights = checkpointStateDict(root, which, file);
  } catch (e) {
    const message = oneLine((e as Error).message);
    // --model has no --weights flag: the other weights are for convert
    throw new UsageError(
      options.mode === 'model' ? message.replace(/pick another with (--weights \w+)/, 'convert it with `causalfusion convert $1`') : message,
    );
  }
  const trainLayout = isTrainLayout(root);
  const rawArgs = checkpointArgs(root);
  let config: ModelConfig;
  let configSource: string;
  const fromArgs = configFromArgs(rawArgs);
  const beside = path.join(path.dirname(abs), 'config.json');
  if (explicit) {
    config = explicit;
    configSource = path.resolve(options.configFile!);
  } else if ('config' in fromArgs) {
    ({ config, source: configSource } = fromArgs);
  } else if (options.mode === 'model' && fs.existsSync(beside)) {
    try {
      config = readConfigFile(beside);
    } catch (e) {
      throw new UsageError(oneLine((e as Error).message));
    }
    configSource = beside;
  } else {
    const fix =
      options.mode === 'convert'
        ? "give the model's config with --config config.json (the official constructor arguments: input_size, patch_size, latent_channels, hidden_size, num_cond_tokens, depth, num_heads, num_classes, ...)"
        : `put the model's config.json beside it, or convert it once with \`causalfusion convert --from ${file} --config config.json --out DIR\``;
    throw new UsageError(`${file}: no model config: ${fromArgs.reason}; ${fix}`);
  }
  const fix = explicit
    ? 'Fix: give the config the checkpoint was trained with (--config).'
    : configSource === beside
      ? 'Fix: put the config the checkpoint was trained with in the config.json beside it.'
      : `Fix: give the config the checkpoint was trained with${options.mode === 'convert' ? ' with --config config.json' : `: \`causalfusion convert --from ${file} --config config.json --out DIR\``}.`;
  try {
    checkStateDict(config, weights, file);
  } catch (e) {
    throw new UsageError(oneLine((e as Error).message, fix));
  }
  const trainSteps = get(root, 'train_steps');
  return {
    file: abs,
    config,
    configSource,
    weights,
    which: trainLayout ? which : 'state_dict',
    dtypes: dtypesOf(trainLayout ? get(root, which) : root),
    args: jsonSafe(rawArgs),
    trainSteps: typeof trainSteps === 'number' ? trainSteps : null,
  };
}

/** Which weights were taken, in words: "the EMA weights (float16)". */
export function describeWeights(ckpt: OfficialCheckpoint): string {
  const what = ckpt.which === 'ema' ? 'the EMA weights' : ckpt.which === 'model' ? 'the model weights (not the EMA)' : 'the state_dict';
  return `${what} (${ckpt.dtypes.join(', ') || 'float32'})`;
}
