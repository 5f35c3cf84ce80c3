/**
 * Command-line flags of both training tasks: a table maps each flag to a config key and a kind, and
 * --resume merges what a session may change into the run's saved config.
 */
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
    ({ values } = parseArgs({ args: argv, options, strict: true, allowPositionals: false }));
  } catch (err) {
    throw new Error(`${(err as Error).message.split('\n')[0]} (see ${helpHint})`);
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
 * The config of a resumed session: the run's saved config with the `resumable` keys taken from the
 * flags given (`explicit`); any other flag must repeat the saved value.
 */
export function resumedConfig<C extends object>(saved: C, explicit: Partial<C>, resumable: readonly (keyof C)[]): C {
  const config = { ...saved };
  for (const [k, value] of Object.entries(explicit)) {
    const key = k as keyof C;
    if (resumable.includes(key)) (config as Record<string, unknown>)[k] = value;
    else if (JSON.stringify(value) !== JSON.stringify(saved[key])) {
      throw new Error(`--resume keeps the run's ${k} (${JSON.stringify(saved[key])}); drop that flag or start a new run in another --out`);
    }
  }
  return config;
}
