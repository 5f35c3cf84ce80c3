/**
 * @causalfusion/safetensors: the safetensors format (huggingface/safetensors) on typed arrays.
 *
 * Layout: an 8-byte little-endian header length N, N bytes of JSON
 * `{ key: { dtype, shape, data_offsets: [begin, end] }, __metadata__?: { str: str } }`, then the raw
 * little-endian tensor bytes (offsets are relative to the end of the header). We read F32, F64, F16
 * and BF16 (all returned as float32) and write F32, 8-byte aligned as the reference writer does, so
 * `safetensors.torch.load_file` reads what we write and official PyTorch weights load here.
 */
import * as fs from 'fs';
import { writeFileAtomic } from './files';

export interface NamedTensor {
  shape: number[];
  data: Float32Array;
}

export interface SafetensorsContent {
  /** In file order. */
  tensors: Map<string, NamedTensor>;
  metadata: Record<string, string>;
}

const DTYPE_BYTES: Record<string, number> = { F32: 4, F64: 8, F16: 2, BF16: 2 };

/** An IEEE half-precision value (its 16 bits) as a number. */
export function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 31) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

/** The reference implementation's limit on the JSON header (huggingface/safetensors MAX_HEADER_SIZE). */
const MAX_HEADER_BYTES = 100_000_000;

const isIndex = (x: unknown): x is number => typeof x === 'number' && Number.isSafeInteger(x) && x >= 0;

/**
 * Parse safetensors bytes. `source` names the file in error messages. As the reference implementation,
 * the header must be a UTF-8 JSON object of at most 100 MB, shapes and offsets non-negative integers,
 * `__metadata__` a map of strings, and the tensors must tile the data area exactly (no gaps, overlaps
 * or trailing bytes); anything else is an Error naming the file and the problem.
 */
export function parseSafetensors(bytes: Uint8Array, source = 'safetensors data'): SafetensorsContent {
  const fail = (why: string): never => {
    throw new Error(`${source} is not a valid safetensors file: ${why}`);
  };
  if (bytes.length < 8) fail(`only ${bytes.length} bytes`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLength64 = view.getBigUint64(0, true);
  if (headerLength64 > BigInt(bytes.length - 8)) {
    fail(`header length ${headerLength64} exceeds the file size ${bytes.length} (a PyTorch .pt file? convert it to safetensors first)`);
  }
  const headerLength = Number(headerLength64);
  if (headerLength > MAX_HEADER_BYTES) fail(`header length ${headerLength} is over the format's limit of ${MAX_HEADER_BYTES} bytes`);
  let text = '';
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(8, 8 + headerLength));
  } catch {
    fail('the header is not valid UTF-8');
  }
  let header: unknown;
  try {
    header = JSON.parse(text);
  } catch (err) {
    return fail(`the header is not JSON (${(err as Error).message.replace(/\s+/g, ' ')})`);
  }
  if (header === null || typeof header !== 'object' || Array.isArray(header)) {
    fail(`the header is ${Array.isArray(header) ? 'an array' : JSON.stringify(header)}, not a JSON object`);
  }
  const dataStart = 8 + headerLength;
  const dataLength = bytes.length - dataStart;
  const scratch = new DataView(new ArrayBuffer(4));
  const entries: { name: string; dtype: string; shape: number[]; begin: number; end: number; numel: number }[] = [];
  let metadata: Record<string, string> = {};
  for (const [name, value] of Object.entries(header as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (value === null) continue;
      if (typeof value !== 'object' || Array.isArray(value) || !Object.values(value).every((v) => typeof v === 'string')) {
        fail(`__metadata__ must map names to strings, got ${JSON.stringify(value).slice(0, 80)}`);
      }
      metadata = value as Record<string, string>;
      continue;
    }
    if (value === null || typeof value !== 'object' || Array.isArray(value)) {
      fail(`tensor "${name}" is ${JSON.stringify(value).slice(0, 80)}, not {dtype, shape, data_offsets}`);
    }
    const { dtype, shape, data_offsets: offsets } = value as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    const bytesPer = typeof dtype === 'string' && Object.hasOwn(DTYPE_BYTES, dtype) ? DTYPE_BYTES[dtype] : 0;
    if (!bytesPer)
      fail(`tensor "${name}" has dtype ${typeof dtype === 'string' ? dtype : JSON.stringify(dtype)}; supported: ${Object.keys(DTYPE_BYTES).join(', ')}`);
    if (!Array.isArray(shape) || !shape.every(isIndex)) fail(`tensor "${name}" has shape ${JSON.stringify(shape)}; expected a list of non-negative integers`);
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isIndex)) {
      fail(`tensor "${name}" has data_offsets ${JSON.stringify(offsets)}; expected [begin, end], non-negative integers`);
    }
    const [begin, end] = offsets as [number, number];
    const numel = (shape as number[]).reduce((a, b) => a * b, 1);
    if (end - begin !== numel * bytesPer || end > dataLength) {
      fail(`tensor "${name}" (${dtype} [${shape}]) has data_offsets [${begin}, ${end}] but ${dataLength} data bytes`);
    }
    entries.push({ name, dtype: dtype as string, shape: shape as number[], begin, end, numel });
  }
  // The tensors must tile the data area: sorted by offsets, each starts where the previous one ends.
  let covered = 0;
  for (const e of [...entries].sort((a, b) => a.begin - b.begin || a.end - b.end)) {
    if (e.begin !== covered) {
      fail(`tensor "${e.name}" starts at data byte ${e.begin} but the tensors before it end at ${covered}; tensors must not overlap or leave gaps`);
    }
    covered = e.end;
  }
  if (covered !== dataLength) fail(`the tensors cover ${covered} of the ${dataLength} data bytes`);
  const tensors = new Map<string, NamedTensor>();
  for (const { name, dtype, shape, begin, numel } of entries) {
    const data = new Float32Array(numel);
    const base = dataStart + begin;
    if (dtype === 'F32') {
      for (let i = 0; i < numel; i++) data[i] = view.getFloat32(base + 4 * i, true);
    } else if (dtype === 'F64') {
      for (let i = 0; i < numel; i++) data[i] = view.getFloat64(base + 8 * i, true);
    } else if (dtype === 'F16') {
      for (let i = 0; i < numel; i++) data[i] = halfToFloat(view.getUint16(base + 2 * i, true));
    } else {
      // bfloat16 is the top half of a float32
      for (let i = 0; i < numel; i++) {
        scratch.setUint32(0, view.getUint16(base + 2 * i, true) << 16);
        data[i] = scratch.getFloat32(0);
      }
    }
    tensors.set(name, { shape: [...shape], data });
  }
  return { tensors, metadata };
}

/** Serialise float32 tensors, in the given order, with optional string metadata. */
export function serializeSafetensors(
  tensors: Iterable<[string, NamedTensor]> | Record<string, NamedTensor>,
  metadata: Record<string, string> = {},
): Uint8Array {
  const entries = Symbol.iterator in tensors ? [...(tensors as Iterable<[string, NamedTensor]>)] : Object.entries(tensors);
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length > 0) header.__metadata__ = metadata;
  let offset = 0;
  for (const [key, t] of entries) {
    const numel = t.shape.reduce((a, b) => a * b, 1);
    if (numel !== t.data.length) throw new Error(`safetensors: tensor "${key}" has ${t.data.length} values but shape [${t.shape}] needs ${numel}`);
    header[key] = { dtype: 'F32', shape: t.shape, data_offsets: [offset, offset + numel * 4] };
    offset += numel * 4;
  }
  let json = JSON.stringify(header);
  // Pad with spaces so the data starts 8-byte aligned (as the reference writer does).
  json += ' '.repeat((8 - ((8 + Buffer.byteLength(json)) % 8)) % 8);
  const headerBytes = new TextEncoder().encode(json);
  const out = new Uint8Array(8 + headerBytes.length + offset);
  const view = new DataView(out.buffer);
  view.setBigUint64(0, BigInt(headerBytes.length), true);
  out.set(headerBytes, 8);
  let pos = 8 + headerBytes.length;
  for (const [, t] of entries) {
    for (let i = 0; i < t.data.length; i++) view.setFloat32(pos + i * 4, t.data[i], true);
    pos += t.data.length * 4;
  }
  return out;
}

/** Read a safetensors file; errors name the file. */
export function readSafetensors(file: string): SafetensorsContent {
  let bytes: Buffer;
  try {
    bytes = fs.readFileSync(file);
  } catch (err) {
    throw new Error(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message}`);
  }
  return parseSafetensors(bytes, file);
}

// Output folders and atomic writes (temporary file + rename), shared by every tool that writes.
export { copyFileAtomic, crc32, makeDirs, OutputPathError, writeAll, writeFileAtomic, writeFileAtomicWith } from './files';

/** Write float32 tensors to a safetensors file, atomically. */
export function writeSafetensors(
  file: string,
  tensors: Iterable<[string, NamedTensor]> | Record<string, NamedTensor>,
  metadata: Record<string, string> = {},
): void {
  writeFileAtomic(file, serializeSafetensors(tensors, metadata));
}
