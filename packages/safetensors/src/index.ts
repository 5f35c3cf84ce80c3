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
import * as path from 'path';

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

function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 31) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

/** Parse safetensors bytes. `source` names the file in error messages. */
export function parseSafetensors(bytes: Uint8Array, source = 'safetensors data'): SafetensorsContent {
  const fail = (why: string): never => {
    throw new Error(`${source} is not a valid safetensors file: ${why}`);
  };
  if (bytes.length < 8) fail(`only ${bytes.length} bytes`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLength = Number(view.getBigUint64(0, true));
  if (headerLength > bytes.length - 8) {
    fail(`header length ${headerLength} exceeds the file size ${bytes.length} (a PyTorch .pt file? convert it to safetensors first)`);
  }
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + headerLength))) as Record<string, unknown>;
  } catch (err) {
    return fail(`the header is not JSON (${(err as Error).message})`);
  }
  const dataStart = 8 + headerLength;
  const dataLength = bytes.length - dataStart;
  const scratch = new DataView(new ArrayBuffer(4));
  const tensors = new Map<string, NamedTensor>();
  let metadata: Record<string, string> = {};
  for (const [name, value] of Object.entries(header)) {
    if (name === '__metadata__') {
      metadata = (value ?? {}) as Record<string, string>;
      continue;
    }
    const { dtype, shape, data_offsets: offsets } = (value ?? {}) as { dtype?: string; shape?: number[]; data_offsets?: number[] };
    const bytesPer = DTYPE_BYTES[dtype ?? ''];
    if (!bytesPer) fail(`tensor "${name}" has dtype ${dtype}; supported: ${Object.keys(DTYPE_BYTES).join(', ')}`);
    if (!Array.isArray(shape) || !Array.isArray(offsets) || offsets.length !== 2) fail(`tensor "${name}" lacks shape or data_offsets`);
    const [begin, end] = offsets as [number, number];
    const numel = (shape as number[]).reduce((a, b) => a * b, 1);
    if (end - begin !== numel * bytesPer || begin < 0 || end > dataLength) {
      fail(`tensor "${name}" (${dtype} [${shape}]) has data_offsets [${begin}, ${end}] but ${dataLength} data bytes`);
    }
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
    tensors.set(name, { shape: [...(shape as number[])], data });
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

/**
 * Write any bytes atomically: to a temporary file beside the target, flushed, then renamed over it,
 * so an interrupted write never leaves a half-written file behind.
 */
export function writeFileAtomic(file: string, data: Uint8Array | string): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const tmp = `${file}.tmp-${process.pid}-${Date.now()}`;
  const fd = fs.openSync(tmp, 'w');
  try {
    fs.writeSync(fd, typeof data === 'string' ? Buffer.from(data) : data);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, file);
}

/** Write float32 tensors to a safetensors file, atomically. */
export function writeSafetensors(
  file: string,
  tensors: Iterable<[string, NamedTensor]> | Record<string, NamedTensor>,
  metadata: Record<string, string> = {},
): void {
  writeFileAtomic(file, serializeSafetensors(tensors, metadata));
}
