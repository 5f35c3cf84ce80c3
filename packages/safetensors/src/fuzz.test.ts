/**
 * Parser fuzzing (issue #19): mutated safetensors files must be a clear Error naming the file, or a
 * correct parse. "Correct" is judged by a strict reading of the format written here from the
 * reference implementation's rules (huggingface/safetensors `validate`): a JSON object header of
 * valid UTF-8, at most 100 MB, integer shapes and offsets, tensors that tile the data area exactly.
 * `pnpm fuzz` runs more cases (test-utils/fuzz.ts).
 */
import * as fs from 'fs';
import * as path from 'path';
import { describeFailures, fuzz, fuzzTimeout, jsonText, mutateBytes, mutateJson, type FuzzRng } from '../../../test-utils/fuzz';
import { halfToFloat, parseSafetensors, serializeSafetensors, type SafetensorsContent } from './index';

const OFFICIAL = path.resolve(__dirname, '../../../../shared/reference/official_tiny/weights.safetensors');
const SIZES: Record<string, number> = { F32: 4, F64: 8, F16: 2, BF16: 2 };
const SPEC_DTYPES = ['BOOL', 'U8', 'I8', 'F8_E5M2', 'F8_E4M3', 'I16', 'U16', 'F16', 'BF16', 'I32', 'U32', 'F32', 'F64', 'I64', 'U64'];

function fromHeader(header: unknown, data: Uint8Array, rawHeader?: string): Uint8Array {
  const json = new TextEncoder().encode(rawHeader ?? jsonText(header));
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

/** Small files of every dtype we read, with metadata, a scalar and an empty tensor. */
function seeds(): Uint8Array[] {
  const data = Uint8Array.from({ length: 64 }, (_, i) => (i * 37 + 11) & 0xff);
  const mixed = fromHeader(
    {
      __metadata__: { format: 'pt', step: '3' },
      a: { dtype: 'F64', shape: [1], data_offsets: [0, 8] },
      h: { dtype: 'F16', shape: [2, 2], data_offsets: [8, 16] },
      b: { dtype: 'BF16', shape: [4], data_offsets: [16, 24] },
      s: { dtype: 'F32', shape: [], data_offsets: [24, 28] },
      e: { dtype: 'F32', shape: [0, 3], data_offsets: [28, 28] },
      w: { dtype: 'F32', shape: [3, 2], data_offsets: [28, 52] },
    },
    data.subarray(0, 52),
  );
  const written = serializeSafetensors(
    { x: { shape: [2, 3], data: Float32Array.of(1, -2, 3.5, NaN, Infinity, 0) }, y: { shape: [1], data: Float32Array.of(7) } },
    { config: '{"depth":2}' },
  );
  const out = [mixed, written];
  if (fs.existsSync(OFFICIAL)) out.push(new Uint8Array(fs.readFileSync(OFFICIAL)));
  return out;
}

type Oracle =
  { valid: true; supported: boolean; tensors: [string, string, number[], number, number][]; metadata: Record<string, string> } | { valid: false; why: string };

/** The reference implementation's verdict on a file, and where each tensor's bytes are. */
function oracle(bytes: Uint8Array): Oracle {
  const bad = (why: string): Oracle => ({ valid: false, why });
  if (bytes.length < 8) return bad('short');
  const n = new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true);
  if (n > 100_000_000n || 8n + n > BigInt(bytes.length)) return bad('header length');
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(8, 8 + Number(n)));
  } catch {
    return bad('utf-8');
  }
  let header: unknown;
  try {
    header = JSON.parse(text);
  } catch {
    return bad('json');
  }
  if (header === null || typeof header !== 'object' || Array.isArray(header)) return bad('not an object');
  const isIndex = (x: unknown): x is number => typeof x === 'number' && Number.isSafeInteger(x) && x >= 0;
  let metadata: Record<string, string> = {};
  const tensors: [string, string, number[], number, number][] = [];
  let supported = true;
  for (const [name, v] of Object.entries(header as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (v === null) continue;
      if (typeof v !== 'object' || Array.isArray(v) || !Object.values(v as object).every((s) => typeof s === 'string')) return bad('metadata');
      metadata = v as Record<string, string>;
      continue;
    }
    if (v === null || typeof v !== 'object' || Array.isArray(v)) return bad('entry');
    const { dtype, shape, data_offsets: off } = v as Record<string, unknown>;
    if (typeof dtype !== 'string' || !SPEC_DTYPES.includes(dtype)) return bad('dtype');
    if (!Array.isArray(shape) || !shape.every(isIndex)) return bad('shape');
    if (!Array.isArray(off) || off.length !== 2 || !off.every(isIndex)) return bad('offsets');
    if (!(dtype in SIZES)) supported = false;
    const numel = shape.reduce((a: number, b: number) => a * b, 1);
    if (off[1] < off[0] || off[1] - off[0] !== numel * (SIZES[dtype] ?? 1)) return bad('size');
    if (!Number.isSafeInteger(numel)) return bad('numel');
    tensors.push([name, dtype, shape, off[0], off[1]]);
  }
  const sorted = [...tensors].sort((x, y) => x[3] - y[3] || x[4] - y[4]);
  let end = 0;
  for (const t of sorted) {
    if (t[3] !== end) return bad('not contiguous');
    end = t[4];
  }
  if (end !== bytes.length - 8 - Number(n)) return bad('incomplete');
  return { valid: true, supported, tensors, metadata };
}

function decodeValue(view: DataView, dtype: string, at: number): number {
  if (dtype === 'F32') return view.getFloat32(at, true);
  if (dtype === 'F64') return Math.fround(view.getFloat64(at, true));
  const h = view.getUint16(at, true);
  if (dtype === 'BF16') return new Float32Array(new Uint32Array([h << 16]).buffer)[0];
  return halfToFloat(h);
}

/** A header mutated as JSON (dtype, shape, offsets, metadata), the data kept. */
function mutateHeader(rng: FuzzRng, bytes: Uint8Array): { bytes: Uint8Array; what: string } {
  const n = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n)));
  const m = mutateJson(rng, header);
  return { bytes: fromHeader(undefined, bytes.subarray(8 + n), jsonText(m.value)), what: `header: ${m.what}` };
}

const SOURCE = 'fuzz.safetensors';

describe('safetensors parser fuzzing', () => {
  it(
    'every mutated file is a clear error naming the file, or exactly what the format says',
    async () => {
      const corpus = seeds();
      const report = await fuzz<Uint8Array, SafetensorsContent>({
        name: 'safetensors',
        seed: 'safetensors-1',
        cases: 3000,
        generate(rng) {
          // mostly the small seeds (fast); the official checkpoint now and then
          const seed = rng.chance(0.9) ? corpus[rng.int(2)] : rng.pick(corpus);
          const m = rng.chance(0.5) ? mutateHeader(rng, seed) : mutateBytes(rng, seed, [{ at: 0, width: 8 }]);
          return { input: m.bytes, what: m.what };
        },
        parse: (bytes) => parseSafetensors(bytes, SOURCE),
        checkError: (_bytes, message) => (message.includes(SOURCE) ? undefined : 'does not name the file'),
        check(bytes, result) {
          const ref = oracle(bytes);
          if (!ref.valid) return `the format says it is invalid (${ref.why})`;
          if (!ref.supported) return 'it holds a dtype the parser does not read';
          if (JSON.stringify(result.metadata) !== JSON.stringify(ref.metadata)) return `metadata ${JSON.stringify(result.metadata)}`;
          if (JSON.stringify([...result.tensors.keys()]) !== JSON.stringify(ref.tensors.map((t) => t[0]))) return 'different tensor names';
          const n = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
          const view = new DataView(bytes.buffer, bytes.byteOffset + 8 + n);
          for (const [name, dtype, shape, begin] of ref.tensors) {
            const t = result.tensors.get(name)!;
            if (JSON.stringify(t.shape) !== JSON.stringify(shape)) return `${name} has shape ${JSON.stringify(t.shape)}, not ${JSON.stringify(shape)}`;
            if (!(t.data instanceof Float32Array)) return `${name} is not a Float32Array`;
            const numel = shape.reduce((a, b) => a * b, 1);
            if (t.data.length !== numel) return `${name} has ${t.data.length} values for shape ${JSON.stringify(shape)}`;
            for (let i = 0; i < numel; i++) {
              const want = decodeValue(view, dtype, begin + i * SIZES[dtype]);
              if (!Object.is(t.data[i], Math.fround(want)) && !(Number.isNaN(t.data[i]) && Number.isNaN(want)))
                return `${name}[${i}] = ${t.data[i]}, not ${want}`;
            }
          }
          return undefined;
        },
      });
      expect(describeFailures(report)).toBe('');
      expect(report.cases).toBeGreaterThan(0);
    },
    fuzzTimeout(60_000),
  );

  // One regression case for each bug the fuzzer found (the inputs it failed on, reduced).
  describe('regressions', () => {
    const f32 = (shape: unknown, offsets: unknown, extra: object = {}) => ({ a: { dtype: 'F32', shape, data_offsets: offsets }, ...extra });
    const parse =
      (header: unknown, data = new Uint8Array(8), raw?: string) =>
      () =>
        parseSafetensors(fromHeader(header, data, raw), 'r.safetensors');
    it('a header that is JSON but not an object (was a TypeError "Cannot convert undefined or null to object")', () => {
      expect(parse(null, new Uint8Array(0))).toThrow('r.safetensors is not a valid safetensors file: the header is null, not a JSON object');
      expect(parse([1], new Uint8Array(0))).toThrow('the header is an array, not a JSON object');
    });
    it('offsets given as strings or fractions (was a RangeError from DataView, or values read from the wrong bytes)', () => {
      expect(parse(f32([2], ['0', '8']))).toThrow(/tensor "a" has data_offsets \["0","8"\]; expected \[begin, end\], non-negative integers/);
      expect(parse(f32([1], [0.5, 4.5]), new Uint8Array(5))).toThrow(/data_offsets \[0.5,4.5\]/);
    });
    it('shapes with strings, fractions or negative sizes (were accepted: ["2"] or [-1, -2] read as 2 values)', () => {
      expect(parse(f32(['2'], [0, 8]))).toThrow(/tensor "a" has shape \["2"\]; expected a list of non-negative integers/);
      expect(parse(f32([-1, -2], [0, 8]))).toThrow(/shape \[-1,-2\]/);
      expect(parse(f32([0.5, 4], [0, 8]))).toThrow(/shape \[0.5,4\]/);
    });
    it('__metadata__ that is not a map of strings (was returned as is)', () => {
      expect(parse(f32([2], [0, 8], { __metadata__: { step: 3 } }))).toThrow('__metadata__ must map names to strings, got {"step":3}');
      expect(parse(f32([2], [0, 8], { __metadata__: 'x' }))).toThrow('__metadata__ must map names to strings');
    });
    it('tensors that overlap, leave gaps or do not reach the end of the data (were accepted)', () => {
      const two = (a: number[], b: number[]) => ({ a: { dtype: 'F32', shape: [1], data_offsets: a }, b: { dtype: 'F32', shape: [1], data_offsets: b } });
      expect(parse(two([0, 4], [0, 4]))).toThrow('tensor "b" starts at data byte 0 but the tensors before it end at 4; tensors must not overlap or leave gaps');
      expect(parse(two([0, 4], [8, 12]), new Uint8Array(12))).toThrow(/tensor "b" starts at data byte 8/);
      expect(parse(f32([1], [0, 4]))).toThrow('the tensors cover 4 of the 8 data bytes');
    });
    it('a header that is not UTF-8 (was decoded with replacement characters)', () => {
      const bytes = fromHeader(f32([2], [0, 8]), new Uint8Array(8));
      bytes[10] = 0xff; // inside the key "a" -> an invalid byte
      expect(() => parseSafetensors(bytes, 'r.safetensors')).toThrow('r.safetensors is not a valid safetensors file: the header is not valid UTF-8');
    });
  });
});
