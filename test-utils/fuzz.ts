/**
 * Shared by the packages' `*.fuzz.test.ts`: a seeded fuzz driver for file parsers, and the mutations
 * it applies (bytes: truncations, flipped bits, huge length fields, spliced spans; JSON: wrong types,
 * huge / negative / fractional / infinite numbers, missing and extra keys).
 *
 * Every case must end in one of two ways: a correct parse (the test's `check` finds nothing wrong
 * with the result) or a clear Error: a plain `Error` (or a named subclass the test allows) whose
 * message names the problem (the test's `checkError`). Anything else is a failure: a thrown
 * non-Error, an engine error (TypeError, RangeError from a typed-array constructor, SyntaxError from
 * JSON.parse leaking out), a case slower than `perCaseMs` (a hang), or a result `check` rejects
 * (silent garbage).
 *
 * `pnpm test` runs each parser's seeded cases (a few seconds). `pnpm fuzz` (scripts/fuzz.mjs) runs the
 * same tests with more cases through these environment variables:
 *   CF_FUZZ          set by pnpm fuzz
 *   CF_FUZZ_CASES    cases per parser (overrides the test's default)
 *   CF_FUZZ_SECONDS  time budget per parser; with it and no CF_FUZZ_CASES, cases are unlimited
 *   CF_FUZZ_SEED     seed (default: the test's)
 *   CF_FUZZ_REPORT   file to which one JSON line per parser is appended (name, cases, ...)
 *   CF_FUZZ_PROGRESS file that always holds the case in progress (to name the case of a real hang)
 */
import * as fs from 'fs';

/** A small seeded generator (mulberry32 over a string hash): the test utils depend on no package. */
export class FuzzRng {
  private state: number;
  constructor(seed: string | number) {
    let h = 2166136261;
    for (const ch of String(seed)) h = Math.imul(h ^ ch.charCodeAt(0), 16777619);
    this.state = h >>> 0;
  }
  /** Uniform in [0, 1). */
  next(): number {
    let t = (this.state = (this.state + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  /** Integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)];
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
}

/** Numbers that break length fields: zero, one, byte and word edges, 2^31, 2^32, 2^53, 2^63, 2^64 - 1. */
const HUGE_U64 = [
  0n,
  1n,
  7n,
  0xffn,
  0x7fffn,
  0xffffn,
  0x7fffffffn,
  0x80000000n,
  0xffffffffn,
  0x100000000n,
  1n << 53n,
  (1n << 63n) - 1n,
  1n << 63n,
  (1n << 64n) - 1n,
];

/** A byte mutation: the bytes and a description for failure reports. */
export interface Mutated {
  bytes: Uint8Array;
  what: string;
}

/**
 * One random byte-level mutation of `seed`. `fields` lists offsets of length/offset fields of the
 * format (with their width in bytes, little or big endian), which get huge and edge values.
 */
export function mutateBytes(rng: FuzzRng, seed: Uint8Array, fields: { at: number; width: 2 | 4 | 8; big?: boolean }[] = []): Mutated {
  const b = new Uint8Array(seed);
  const kind = rng.int(fields.length ? 8 : 7);
  switch (kind) {
    case 0: {
      // truncation: mostly inside the first bytes (headers), sometimes anywhere
      const n = rng.chance(0.5) ? rng.int(Math.min(b.length, 64)) : rng.int(b.length);
      return { bytes: b.slice(0, n), what: `truncated to ${n} of ${b.length} bytes` };
    }
    case 1: {
      const flips: number[] = [];
      for (let k = 1 + rng.int(8); k > 0; k--) {
        const at = rng.chance(0.5) ? rng.int(Math.min(b.length, 256)) : rng.int(b.length);
        b[at] ^= 1 << rng.int(8);
        flips.push(at);
      }
      return { bytes: b, what: `bits flipped at ${flips.join(',')}` };
    }
    case 2: {
      const at = rng.int(b.length);
      const v = rng.pick([0, 0xff, 0x7f, 0x80, rng.int(256)]);
      const n = 1 + rng.int(16);
      b.fill(v, at, at + n);
      return { bytes: b, what: `${n} bytes at ${at} set to ${v}` };
    }
    case 3: {
      // a span removed
      const at = rng.int(b.length);
      const n = 1 + rng.int(Math.max(1, Math.min(64, b.length - at)));
      return { bytes: concat(b.subarray(0, at), b.subarray(at + n)), what: `${n} bytes removed at ${at}` };
    }
    case 4: {
      // random bytes inserted
      const at = rng.int(b.length + 1);
      const junk = Uint8Array.from({ length: 1 + rng.int(32) }, () => rng.int(256));
      return { bytes: concat(b.subarray(0, at), junk, b.subarray(at)), what: `${junk.length} random bytes inserted at ${at}` };
    }
    case 5: {
      // a span duplicated (repeated structures, overlapping offsets)
      const at = rng.int(b.length);
      const n = 1 + rng.int(Math.max(1, Math.min(128, b.length - at)));
      return { bytes: concat(b.subarray(0, at + n), b.subarray(at, at + n), b.subarray(at + n)), what: `${n} bytes duplicated at ${at}` };
    }
    case 6: {
      // a 2/4/8-byte word anywhere set to an edge value
      const width = rng.pick([2, 4, 8] as const);
      const at = rng.int(Math.max(1, b.length - width));
      writeWord(b, at, width, rng.pick(HUGE_U64), rng.chance(0.5));
      return { bytes: b, what: `${width}-byte word at ${at} set to an edge value` };
    }
    default: {
      const f = rng.pick(fields);
      const v = rng.pick(HUGE_U64);
      writeWord(b, f.at, f.width, v, !f.big);
      return { bytes: b, what: `field at ${f.at} (${f.width} bytes) set to ${v}` };
    }
  }
}

function writeWord(b: Uint8Array, at: number, width: number, value: bigint, little: boolean): void {
  for (let i = 0; i < width && at + i < b.length; i++) {
    const byte = Number((value >> BigInt(8 * i)) & 0xffn);
    b[little ? at + i : at + width - 1 - i] = byte;
  }
}

export function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** Infinity / -Infinity inside JSON values, written as 1e999 / -1e999 (which JSON.parse reads back as such). */
const POS_INF = '@@cf-fuzz+inf@@';
const NEG_INF = '@@cf-fuzz-inf@@';

/** Like JSON.stringify, but writes Infinity as 1e999 and -Infinity as -1e999 (NaN has no JSON spelling). */
export function jsonText(value: unknown, indent?: number): string {
  const text = JSON.stringify(value, (_k, v) => (v === Infinity ? POS_INF : v === -Infinity ? NEG_INF : v), indent);
  return text === undefined ? text : text.split(`"${POS_INF}"`).join('1e999').split(`"${NEG_INF}"`).join('-1e999');
}

/** Values of the wrong type or out of range, for any JSON field. */
function oddValue(rng: FuzzRng, old: unknown): unknown {
  const palette: unknown[] = [
    null,
    true,
    false,
    0,
    -1,
    1,
    0.5,
    -0.5,
    2.5,
    1e308,
    -1e308,
    Infinity,
    -Infinity,
    2 ** 31,
    2 ** 32,
    2 ** 53,
    2 ** 64,
    1e12,
    65536,
    '',
    'x',
    '1',
    '-1',
    'NaN',
    'Infinity',
    '__proto__',
    'constructor',
    'x'.repeat(5000),
    [],
    {},
    [1],
    [1, 2],
    [-1, 2],
    [0.5],
    ['a', 'b'],
    [null],
    { a: 1 },
    [[1]],
  ];
  if (typeof old === 'number' && rng.chance(0.5)) {
    return rng.pick([old + 1, old - 1, -old, old * 2, old * 1000, old + 0.5, String(old), [old], Infinity, -Infinity, 2 ** 53 + 2]);
  }
  if (typeof old === 'string' && rng.chance(0.3)) return rng.pick([old.slice(0, -1), old + 'x', old.toUpperCase(), old.toLowerCase(), [old], old.length]);
  if (Array.isArray(old) && old.length > 0 && rng.chance(0.4)) {
    const a = [...old];
    if (rng.chance(0.5)) a.pop();
    else a.push(rng.pick(palette));
    return a;
  }
  return rng.pick(palette);
}

/** Paths to every value in a JSON document (objects and arrays too, the root excluded). */
function jsonPaths(value: unknown, prefix: (string | number)[] = [], out: (string | number)[][] = []): (string | number)[][] {
  if (Array.isArray(value)) {
    // long arrays: a sample of their items, not all
    const n = value.length;
    const idx = n <= 8 ? [...Array(n).keys()] : [0, 1, 2, n >> 1, n - 2, n - 1];
    for (const i of idx) {
      out.push([...prefix, i]);
      jsonPaths(value[i], [...prefix, i], out);
    }
  } else if (value !== null && typeof value === 'object') {
    const keys = Object.keys(value);
    const pickKeys = keys.length <= 32 ? keys : [keys[0], keys[1], keys[keys.length >> 1], keys[keys.length - 1]];
    for (const k of pickKeys) {
      out.push([...prefix, k]);
      jsonPaths((value as Record<string, unknown>)[k], [...prefix, k], out);
    }
  }
  return out;
}

/** A deep copy of a JSON value (Infinity kept). */
function copyJson<T>(v: T): T {
  if (Array.isArray(v)) return v.map(copyJson) as T;
  if (v !== null && typeof v === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) out[k] = copyJson(x);
    return out as T;
  }
  return v;
}

export interface MutatedJson {
  value: unknown;
  what: string;
}

/**
 * One random structural mutation of a JSON document: a value replaced by one of the wrong type or range,
 * a key removed, added or renamed, an array item duplicated, or the whole document replaced.
 * `focus` (optional) lists path prefixes preferred for mutation (the fields a parser reads).
 */
export function mutateJson(rng: FuzzRng, doc: unknown, focus: (string | number)[][] = []): MutatedJson {
  const root = copyJson(doc);
  if (rng.chance(0.03)) {
    const v = rng.pick([null, 1, 'x', [], [root], true, {}]);
    return { value: v, what: `document replaced by ${jsonText(v)}` };
  }
  let paths = jsonPaths(root);
  if (focus.length && rng.chance(0.7)) {
    const preferred = paths.filter((p) => focus.some((f) => f.every((s, i) => p[i] === s)));
    if (preferred.length) paths = preferred;
  }
  if (paths.length === 0) return { value: oddValue(rng, root), what: 'empty document replaced' };
  const p = rng.pick(paths);
  const parent = p.slice(0, -1).reduce<unknown>((o, k) => (o as Record<string, unknown>)[k as string], root) as Record<string | number, unknown>;
  const key = p[p.length - 1];
  const name = p.map(String).join('.');
  const op = rng.int(10);
  if (op < 6) {
    const v = oddValue(rng, parent[key]);
    parent[key] = v;
    const shown = jsonText(v) ?? 'undefined';
    return { value: root, what: `${name} = ${shown.length > 60 ? shown.slice(0, 60) + '...' : shown}` };
  }
  if (op === 6) {
    if (Array.isArray(parent)) parent.splice(key as number, 1);
    else delete parent[key];
    return { value: root, what: `${name} removed` };
  }
  if (op === 7 && !Array.isArray(parent)) {
    const extra = rng.pick(['__proto__', 'constructor', 'extra', 'x', '', String(key) + '_']);
    Object.defineProperty(parent, extra, { value: oddValue(rng, undefined), enumerable: true, configurable: true, writable: true });
    return { value: root, what: `key ${JSON.stringify(extra)} added beside ${name}` };
  }
  if (op === 8 && !Array.isArray(parent)) {
    const renamed = rng.pick([String(key).toUpperCase(), String(key) + ' ', `_${String(key)}`]);
    parent[renamed] = parent[key];
    delete parent[key];
    return { value: root, what: `${name} renamed to ${JSON.stringify(renamed)}` };
  }
  if (Array.isArray(parent)) {
    parent.splice(key as number, 0, copyJson(parent[key]));
    return { value: root, what: `${name} duplicated` };
  }
  parent[key] = copyJson(root);
  return { value: root, what: `${name} replaced by a copy of the document` };
}

/** A text mutation of a JSON (or any text) file: bytes truncated, flipped or spliced, as mutateBytes. */
export function mutateText(rng: FuzzRng, text: string): { text: string; what: string } {
  const m = mutateBytes(rng, new TextEncoder().encode(text));
  return { text: Buffer.from(m.bytes).toString('utf8'), what: m.what };
}

let crcTable: number[] | undefined;
function crc32(bytes: Uint8Array): number {
  crcTable ??= Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  let c = 0xffffffff;
  for (const b of bytes) c = crcTable[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

const EDGE = [0, 1, 2, 0x3fff, 0x4000, 0xffff, 0x10000, 0x7fffffff, 0x80000000, 0xffffffff];

/**
 * A PNG's or JPEG's dimensions (and PNG bit depth / colour type, JPEG component count) set to edge values
 * where the decoder reads them: PNG's IHDR with its CRC fixed, JPEG's SOF0/SOF2. `name` ends in .png or .jpg.
 */
export function mutateImageHeader(rng: FuzzRng, name: string, seed: Uint8Array): { bytes: Uint8Array; what: string } {
  const b = new Uint8Array(seed);
  const v = new DataView(b.buffer);
  if (name.endsWith('.png')) {
    // IHDR data starts at 16: width, height (big endian u32), bit depth, colour type, ...
    const w = rng.chance(0.5) ? rng.pick(EDGE) : v.getUint32(16);
    const h = rng.chance(0.5) ? rng.pick(EDGE) : v.getUint32(20);
    v.setUint32(16, w);
    v.setUint32(20, h);
    let what = `IHDR ${w}x${h}`;
    if (rng.chance(0.3)) {
      b[24] = rng.pick([0, 1, 2, 3, 4, 7, 8, 16, 32, 255]);
      b[25] = rng.pick([0, 1, 2, 3, 4, 5, 6, 7, 255]);
      what += `, depth ${b[24]}, colour type ${b[25]}`;
    }
    v.setUint32(29, crc32(b.subarray(12, 29)));
    return { bytes: b, what: `${what} (CRC fixed)` };
  }
  // JPEG: the SOF0/SOF2 marker: FF C0|C2, length (2), precision (1), height (2), width (2), components (1)
  let at = -1;
  for (let i = 2; i + 9 < b.length; i++) if (b[i] === 0xff && (b[i + 1] === 0xc0 || b[i + 1] === 0xc2)) ((at = i), (i = b.length));
  if (at < 0) return { bytes: b, what: 'no SOF marker' };
  const h = rng.chance(0.5) ? rng.pick(EDGE) & 0xffff : v.getUint16(at + 5);
  const w = rng.chance(0.5) ? rng.pick(EDGE) & 0xffff : v.getUint16(at + 7);
  v.setUint16(at + 5, h);
  v.setUint16(at + 7, w);
  if (rng.chance(0.2)) b[at + 9] = rng.pick([0, 2, 5, 255]);
  return { bytes: b, what: `SOF ${w}x${h}, ${b[at + 9]} components` };
}

export interface FuzzCase<T> {
  input: T;
  /** How the input was made (shown when the case fails). */
  what: string;
}

export interface FuzzOptions<T, R> {
  /** The parser's name in reports. */
  name: string;
  /** Default seed; CF_FUZZ_SEED overrides it. */
  seed: string;
  /** Cases in `pnpm test`; CF_FUZZ_CASES overrides it. */
  cases: number;
  /**
   * Cases under `pnpm fuzz` (CF_FUZZ set) whatever its time budget, for suites with a fixed size there
   * (the BPE round trip's 100,000 strings); CF_FUZZ_CASES still overrides it.
   */
  fuzzCases?: number;
  /** A case slower than this is a hang (default 2000 ms). */
  perCaseMs?: number;
  /** Class names of errors accepted besides Error (e.g. the CLI's UsageError). */
  errorNames?: string[];
  generate(rng: FuzzRng, index: number): FuzzCase<T> | Promise<FuzzCase<T>>;
  parse(input: T): R | Promise<R>;
  /** Problems with a successful parse (silent garbage), or nothing when the result is correct. */
  check?(input: T, result: R): string | undefined | Promise<string | undefined>;
  /** Problems with an Error's message (e.g. it must name the file), or nothing. */
  checkError?(input: T, message: string): string | undefined;
  /** Called after each case (cleanup of files). */
  after?(input: T): void | Promise<void>;
}

export interface FuzzFailure {
  index: number;
  what: string;
  problem: string;
}

export interface FuzzReport {
  name: string;
  seed: string;
  cases: number;
  parsed: number;
  rejected: number;
  ms: number;
  slowestMs: number;
  failures: FuzzFailure[];
}

const ENGINE_ERRORS = new Set(['TypeError', 'RangeError', 'SyntaxError', 'ReferenceError', 'EvalError', 'URIError', 'AggregateError']);

/** Runs the cases; never throws for a failing case (they are in the report). */
export async function fuzz<T, R>(opts: FuzzOptions<T, R>): Promise<FuzzReport> {
  const env = process.env;
  const seed = env.CF_FUZZ_SEED ?? opts.seed;
  const fixed = env.CF_FUZZ && opts.fuzzCases !== undefined;
  const seconds = env.CF_FUZZ_SECONDS && !fixed ? Number(env.CF_FUZZ_SECONDS) : undefined;
  const cases = env.CF_FUZZ_CASES ? Number(env.CF_FUZZ_CASES) : fixed ? opts.fuzzCases! : seconds !== undefined ? Infinity : opts.cases;
  const perCaseMs = opts.perCaseMs ?? 2000;
  const allowed = new Set(['Error', ...(opts.errorNames ?? [])]);
  const rng = new FuzzRng(`${opts.name}:${seed}`);
  const progress = env.CF_FUZZ_PROGRESS ? fs.openSync(env.CF_FUZZ_PROGRESS, 'w') : undefined;
  const report: FuzzReport = { name: opts.name, seed, cases: 0, parsed: 0, rejected: 0, ms: 0, slowestMs: 0, failures: [] };
  const t0 = Date.now();
  try {
    for (let i = 0; i < cases; i++) {
      if (seconds !== undefined && Date.now() - t0 > seconds * 1000) break;
      const c = await opts.generate(rng, i);
      if (progress !== undefined) {
        fs.ftruncateSync(progress, 0);
        fs.writeSync(progress, `${opts.name} seed ${seed} case ${i}: ${c.what}\n`, 0);
      }
      const fail = (problem: string) => report.failures.push({ index: i, what: c.what, problem });
      const start = Date.now();
      let outcome: { ok: true; result: R } | { ok: false; error: unknown };
      try {
        outcome = { ok: true, result: await opts.parse(c.input) };
      } catch (error) {
        outcome = { ok: false, error };
      }
      const ms = Date.now() - start;
      report.slowestMs = Math.max(report.slowestMs, ms);
      if (ms > perCaseMs) fail(`took ${ms} ms (limit ${perCaseMs} ms): a hang`);
      if (outcome.ok) {
        report.parsed++;
        try {
          const problem = await opts.check?.(c.input, outcome.result);
          if (problem) fail(`parsed, but ${problem}`);
        } catch (err) {
          fail(`parsed, but the check threw ${(err as Error)?.stack ?? String(err)}`);
        }
      } else {
        report.rejected++;
        const err = outcome.error;
        if (!(err instanceof Error)) fail(`threw a non-Error: ${String(err)}`);
        else if (!allowed.has(err.name) || ENGINE_ERRORS.has(err.constructor.name)) {
          fail(`threw ${err.name} (not a clear Error): ${err.message.split('\n')[0]}\n${(err.stack ?? '').split('\n').slice(1, 4).join('\n')}`);
        } else if (!err.message.trim()) fail('threw an Error with an empty message');
        else {
          const problem = opts.checkError?.(c.input, err.message);
          if (problem) fail(`error message ${JSON.stringify(err.message.split('\n')[0])}: ${problem}`);
        }
      }
      await opts.after?.(c.input);
      report.cases++;
    }
  } finally {
    if (progress !== undefined) fs.closeSync(progress);
  }
  report.ms = Date.now() - t0;
  if (env.CF_FUZZ_REPORT) fs.appendFileSync(env.CF_FUZZ_REPORT, JSON.stringify({ ...report, failures: report.failures.length }) + '\n');
  return report;
}

/** Jest-friendly summary: '' when there are no failures, else the first few, one paragraph each. */
export function describeFailures(report: FuzzReport, max = Number(process.env.CF_FUZZ_SHOW ?? 8)): string {
  if (report.failures.length === 0) return '';
  const shown = report.failures.slice(0, max).map((f) => `case ${f.index} (${f.what}): ${f.problem}`);
  return `${report.name}: ${report.failures.length} of ${report.cases} cases failed (seed ${report.seed})\n${shown.join('\n\n')}`;
}

/** Milliseconds a jest test may take: the budget (when set) plus slack, else `fallback`. */
export function fuzzTimeout(fallback: number): number {
  // under pnpm fuzz, scripts/fuzz.mjs watches for hangs (and names the case); jest need not
  return process.env.CF_FUZZ ? 24 * 3_600_000 : fallback;
}
