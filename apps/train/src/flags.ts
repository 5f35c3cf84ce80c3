/**
 * Command-line flags of both training tasks: a table maps each flag to a config key and a kind, and
 * --resume merges what a session may change into the run's saved config.
 */
import * as fs from 'fs';
import * as path from 'path';
import { parseArgs } from 'util';

export type FlagKind = 'int' | 'float' | 'string' | 'bool';

/**
 * Parse `argv` against `table` (flag -> [config key, kind]) plus plain `switches` (booleans and strings
 * that are not config keys, e.g. --resume, --export). Errors name the flag and point to `helpHint`.
 */
export function parseFlags<K extends string>(
  argv: string[],
  table: Record<string, [K, FlagKind]>,
  switches: Record<string, 'string' | 'boolean'>,
  helpHint: string,
): { values: Record<string, string | boolean | undefined>; overrides: Partial<Record<K, unknown>> } {
  const options: Record<string, { type: 'string' | 'boolean' }> = {};
  for (const [flag, type] of Object.entries(switches)) options[flag] = { type };
  for (const [flag, [, kind]] of Object.entries(table)) options[flag] = { type: kind === 'bool' ? 'boolean' : 'string' };
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({ args: joinNegativeValues(argv, options), options, strict: true, allowPositionals: false }));
  } catch (err) {
    const first = (err as Error).message.split('\n')[0];
    // "--steps --lr 1": util.parseArgs calls that ambiguous; say what is missing
    const ambiguous = /^Option '(-[-\w]+)' argument is ambiguous/.exec(first);
    throw new Error(`${ambiguous ? `${ambiguous[1]} is missing its value (the next argument is a flag)` : first} (see ${helpHint})`);
  }
  const overrides: Partial<Record<K, unknown>> = {};
  for (const [flag, [key, kind]] of Object.entries(table)) {
    const raw = values[flag];
    if (raw === undefined) continue;
    if (kind === 'bool' || kind === 'string') overrides[key] = raw;
    else {
      const n = Number(raw);
      if (raw === '' || !Number.isFinite(n) || (kind === 'int' && !Number.isInteger(n))) {
        throw new Error(`--${flag} expects ${kind === 'int' ? 'an integer' : 'a number'}, got "${String(raw)}"`);
      }
      overrides[key] = n;
    }
  }
  return { values, overrides };
}

/**
 * util.parseArgs reads the "-5" of "--steps -5" as another flag ("argument is ambiguous"): join a
 * negative number to the flag before it ("--steps=-5"), so that the range check says what the flag allows.
 */
function joinNegativeValues(argv: string[], options: Record<string, { type: 'string' | 'boolean' }>): string[] {
  const args: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const next = argv[i + 1];
    const takesValue = a.startsWith('--') && !a.includes('=') && options[a.slice(2)]?.type === 'string';
    if (takesValue && next !== undefined && /^-(\d|\.\d|Infinity$)/.test(next)) {
      args.push(`${a}=${next}`);
      i++;
    } else args.push(a);
  }
  return args;
}

/** The flag of config key `key` in `table` (e.g. hiddenSize -> --width), or the key itself. */
export function flagOf<K extends string>(table: Record<string, [K, FlagKind]>, key: K): string {
  const flag = Object.entries(table).find(([, [k]]) => k === key)?.[0];
  return flag ? `--${flag}` : key;
}

/**
 * The config of a resumed session: the run's saved config with the `resumable` keys taken from the
 * flags given (`explicit`); any other setting given (a flag, or a key of an explicit --preset) must
 * repeat the saved value. Otherwise one Error names every differing key with the checkpoint's value, the
 * given one and where it came from (`sources[key]`, e.g. "--width" or "--preset tiny").
 */
export function resumedConfig<C extends object>(
  saved: C,
  explicit: Partial<C>,
  resumable: readonly (keyof C)[],
  sources: Partial<Record<keyof C, string>> = {},
): C {
  const config = { ...saved };
  // the differing keys, grouped by where the given value came from
  const differing = new Map<string, string[]>();
  for (const [k, value] of Object.entries(explicit)) {
    const key = k as keyof C;
    if (resumable.includes(key)) (config as Record<string, unknown>)[k] = value;
    else if (JSON.stringify(value) !== JSON.stringify(saved[key])) {
      const source = sources[key] ?? 'given';
      differing.set(source, [...(differing.get(source) ?? []), `${k} ${JSON.stringify(saved[key]) ?? 'unset'} vs ${JSON.stringify(value)}`]);
    }
  }
  if (differing.size) {
    const list = [...differing].map(([source, keys]) => `${keys.join(', ')} (${source})`).join('; ');
    throw new Error(
      `--resume keeps the run's settings, and these differ (checkpoint vs given): ${list}. ` +
        'Drop those flags to continue the run as it was started (only --steps and the runtime, output and sampling flags may change), or start a new run in another --out',
    );
  }
  return config;
}

/** The optimizer's flags, as every training task (train, train --task multimodal, finetune) names them. */
export const OPTIMIZER_FLAGS = {
  batch: ['batchSize', 'int'],
  steps: ['steps', 'int'],
  lr: ['lr', 'float'],
  warmup: ['warmupSteps', 'int'],
  beta1: ['beta1', 'float'],
  beta2: ['beta2', 'float'],
  'weight-decay': ['weightDecay', 'float'],
  clip: ['clipNorm', 'float'],
  'ema-decay': ['emaDecay', 'float'],
} as const satisfies Record<string, [string, FlagKind]>;

/** The official recipe's optimizer (AdamW 0.9 / 0.95, warmup, clip 1.0, EMA), the default of both generative tasks. */
export const OPTIMIZER_DEFAULTS = {
  lr: 1e-3,
  warmupSteps: 500,
  beta1: 0.9,
  beta2: 0.95,
  weightDecay: 0,
  clipNorm: 1,
  emaDecay: 0.999,
  emaWarmup: true,
} as const;

/** The AR-weight, order, seed, runtime and output flags of both generative training tasks. */
export const GENERATIVE_RUN_FLAGS = {
  'ar-weight-max': ['maxArWeight', 'float'],
  'ar-weight-min': ['minArWeight', 'float'],
  order: ['order', 'string'],
  seed: ['seed', 'int'],
  runtime: ['runtime', 'string'],
  threads: ['threads', 'int'],
  workers: ['workers', 'int'],
  backend: ['backend', 'string'],
  out: ['out', 'string'],
  'checkpoint-every': ['checkpointEvery', 'int'],
  'init-from': ['initFrom', 'string'],
} as const satisfies Record<string, [string, FlagKind]>;

type OptimizerSettings = { lr: number; warmupSteps: number; clipNorm: number; weightDecay: number };

/**
 * Check --lr and --warmup, then that each of `rateKeys` (beta1, beta2, emaDecay, a dropout) is in
 * [0, 1); `flag` names a key's flag in the messages.
 */
export function checkLearningRates<C extends OptimizerSettings, K extends keyof C & string>(c: C, rateKeys: readonly K[], flag: (k: K) => string): void {
  if (!(c.lr > 0)) throw new Error(`--lr must be positive, got ${c.lr}`);
  if (!Number.isInteger(c.warmupSteps) || c.warmupSteps < 0) throw new Error(`--warmup must be an integer >= 0, got ${c.warmupSteps}`);
  for (const k of rateKeys) {
    const v = c[k] as number;
    if (!(v >= 0 && v < 1)) throw new Error(`${flag(k)} must be in [0, 1), got ${v}`);
  }
}

/** Check --clip (positive) and --weight-decay (>= 0). */
export function checkClipAndDecay(c: OptimizerSettings): void {
  if (!(c.clipNorm > 0)) throw new Error(`--clip must be positive, got ${c.clipNorm}`);
  if (!(c.weightDecay >= 0)) throw new Error(`--weight-decay must be >= 0, got ${c.weightDecay}`);
}

/** The weights file of `--init-from`: a model folder's model.safetensors, or a .safetensors file itself. */
export function initWeightsFile(from: string): string {
  return from.endsWith('.safetensors') ? from : path.join(from, 'model.safetensors');
}

/** --init-from must name weights that exist (checked before any work starts). */
export function checkInitFrom(c: { initFrom?: string }): void {
  if (c.initFrom === undefined) return;
  if (!c.initFrom || !fs.existsSync(initWeightsFile(c.initFrom)))
    throw new Error(
      `--init-from ${c.initFrom}: no ${initWeightsFile(c.initFrom)}; give a model folder (e.g. apps/cli/assets/default-model) or a .safetensors file`,
    );
}
