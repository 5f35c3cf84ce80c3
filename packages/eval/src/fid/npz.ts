/**
 * numpy .npy / .npz files: the format of pytorch-fid's saved statistics (`mu`, `sigma`) and of the ADM
 * evaluator's reference batches (`mu`, `sigma`, plus `arr_0` = the images). An .npz is a zip of .npy
 * members, stored (np.savez, written with zip64 extra fields) or deflated (np.savez_compressed).
 */
import * as fs from 'node:fs';
import { inflateSync, zipSync } from 'fflate';
import { crc32, writeFileAtomic } from '@causalfusion/safetensors';
import type { GaussianStats } from './frechet';
import { checkStats } from './frechet';

export type NpyDtype = 'float32' | 'float64' | 'uint8';

export interface NpyArray {
  /** The dtype stored in the file (values are converted to `data`'s type). */
  dtype: NpyDtype;
  shape: number[];
  /** Row-major (C order) values; Uint8Array for uint8, Float64Array otherwise. */
  data: Float64Array | Uint8Array;
}

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY

/** Parses one .npy file (format versions 1-3, little or big endian float32/float64, uint8). */
export function parseNpy(bytes: Uint8Array, label = 'array'): NpyArray {
  if (bytes.length < 10 || MAGIC.some((b, i) => bytes[i] !== b)) throw new Error(`${label}: not a .npy array (missing the \\x93NUMPY magic)`);
  const major = bytes[6];
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let headerLen: number;
  let offset: number;
  if (major === 1) {
    headerLen = view.getUint16(8, true);
    offset = 10;
  } else if (major === 2 || major === 3) {
    headerLen = view.getUint32(8, true);
    offset = 12;
  } else {
    throw new Error(`${label}: unsupported .npy format version ${major}`);
  }
  if (offset + headerLen > bytes.length) throw new Error(`${label}: truncated .npy (the header needs ${headerLen} bytes, ${bytes.length - offset} left)`);
  const header = Buffer.from(bytes.subarray(offset, offset + headerLen)).toString('latin1');
  const descr = /'descr'\s*:\s*'([^']*)'/.exec(header)?.[1];
  const fortranText = /'fortran_order'\s*:\s*(True|False)/.exec(header)?.[1];
  const shapeText = /'shape'\s*:\s*\(([^)]*)\)/.exec(header)?.[1];
  if (descr === undefined || shapeText === undefined || fortranText === undefined) {
    throw new Error(`${label}: malformed .npy header ${JSON.stringify(header.trim().slice(0, 200))}`);
  }
  const fortran = fortranText === 'True';
  // A tuple of non-negative integers (Python 2 wrote longs as 3L), at most one trailing comma.
  if (!/^\s*(\d+L?\s*,\s*)*(\d+L?\s*,?\s*)?$/.test(shapeText)) {
    throw new Error(`${label}: the .npy shape (${shapeText}) is not a tuple of non-negative integers`);
  }
  const shape = shapeText
    .split(',')
    .map((t) => t.trim().replace(/L$/, ''))
    .filter((t) => t.length > 0)
    .map(Number);
  const count = shape.reduce((a, b) => a * b, 1);
  if (!Number.isSafeInteger(count)) throw new Error(`${label}: the .npy shape (${shapeText}) holds more values than a file can`);
  const dataStart = offset + headerLen;
  const m = /^([<>|=])([fu])(\d+)$/.exec(descr);
  const kind = m ? `${m[2]}${m[3]}` : descr;
  const little = !m || m[1] !== '>';
  let dtype: NpyDtype;
  let data: Float64Array | Uint8Array;
  if (kind === 'f8' || kind === 'f4') {
    const size = kind === 'f8' ? 8 : 4;
    if (bytes.length < dataStart + count * size) throw new Error(`${label}: truncated .npy (${count} x ${size} bytes expected)`);
    data = new Float64Array(count);
    for (let i = 0; i < count; i++) {
      const at = dataStart + i * size;
      data[i] = size === 8 ? view.getFloat64(at, little) : view.getFloat32(at, little);
    }
    dtype = size === 8 ? 'float64' : 'float32';
  } else if (kind === 'u1') {
    if (bytes.length < dataStart + count) throw new Error(`${label}: truncated .npy (${count} bytes expected)`);
    data = bytes.slice(dataStart, dataStart + count);
    dtype = 'uint8';
  } else {
    throw new Error(`${label}: dtype '${descr}' is not supported; save float32, float64 or uint8 arrays`);
  }
  if (fortran && shape.length > 1) data = fortranToC(data, shape);
  return { dtype, shape, data };
}

function fortranToC<T extends Float64Array | Uint8Array>(data: T, shape: number[]): T {
  const out = new (data.constructor as { new (n: number): T })(data.length);
  const n = shape.length;
  const idx = new Array<number>(n).fill(0);
  for (let f = 0; f < data.length; f++) {
    // f enumerates Fortran order: first index fastest.
    let c = 0;
    for (let k = 0; k < n; k++) c = c * shape[k] + idx[k];
    out[c] = data[f];
    for (let k = 0; k < n; k++) {
      if (++idx[k] < shape[k]) break;
      idx[k] = 0;
    }
  }
  return out;
}

/** Serialises a float64, float32 or uint8 array as .npy (format 1.0, little endian, C order). */
export function encodeNpy(data: Float64Array | Float32Array | Uint8Array, shape: number[]): Uint8Array {
  const count = shape.reduce((a, b) => a * b, 1);
  if (count !== data.length) throw new Error(`shape [${shape}] holds ${count} values but the array has ${data.length}`);
  const descr = data instanceof Uint8Array ? '|u1' : data instanceof Float32Array ? '<f4' : '<f8';
  const shapeText = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
  let header = `{'descr': '${descr}', 'fortran_order': False, 'shape': ${shapeText}, }`;
  // numpy pads the header with spaces so the data starts on a 64-byte boundary, and ends it with \n.
  const total = Math.ceil((10 + header.length + 1) / 64) * 64;
  header = header.padEnd(total - 10 - 1, ' ') + '\n';
  const out = new Uint8Array(total + data.byteLength);
  out.set(MAGIC, 0);
  out[6] = 1;
  out[7] = 0;
  new DataView(out.buffer).setUint16(8, header.length, true);
  out.set(Buffer.from(header, 'latin1'), 10);
  if (data instanceof Uint8Array) {
    out.set(data, total);
    return out;
  }
  const body = new DataView(out.buffer, total);
  const size = data instanceof Float32Array ? 4 : 8;
  for (let i = 0; i < data.length; i++) {
    if (size === 8) body.setFloat64(i * 8, data[i], true);
    else body.setFloat32(i * 4, data[i], true);
  }
  return out;
}

/** All arrays of an .npz file, by name without the `.npy` suffix. */
export function readNpz(file: string): Map<string, NpyArray> {
  let zipped: Uint8Array;
  try {
    const buffer = fs.readFileSync(file);
    // a plain Uint8Array view: members are subarrays of it, and uint8 arrays are copied out with slice
    zipped = new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
  } catch (err) {
    throw new Error(`cannot read ${file}: ${(err as Error).message}`);
  }
  const arrays = new Map<string, NpyArray>();
  for (const [name, bytes] of unzipChecked(zipped, file)) {
    if (!name.endsWith('.npy')) continue;
    const key = name.slice(0, -4);
    arrays.set(key, parseNpy(bytes, `${file}:${key}`));
  }
  return arrays;
}

/**
 * The members of a zip file, checked as Python's zipfile (which np.load uses) checks them: the central
 * directory and local headers must lie inside the file, and every member must inflate to its recorded
 * size and CRC-32, so a damaged .npz is an Error rather than wrong numbers. (fflate's unzipSync checks
 * none of this and loops over a corrupt entry count of up to 2^32.) Stored and deflated members, zip64.
 */
function unzipChecked(zip: Uint8Array, file: string): [string, Uint8Array][] {
  const fail = (why: string): never => {
    throw new Error(`${file} is not a numpy .npz (zip) file: ${why}`);
  };
  const view = new DataView(zip.buffer, zip.byteOffset, zip.byteLength);
  const u16 = (at: number) => (at + 2 <= zip.length ? view.getUint16(at, true) : fail('truncated'));
  const u32 = (at: number) => (at + 4 <= zip.length ? view.getUint32(at, true) : fail('truncated'));
  const u64 = (at: number) => {
    const v = at + 8 <= zip.length ? view.getBigUint64(at, true) : fail('truncated');
    return v > BigInt(Number.MAX_SAFE_INTEGER) ? fail(`a zip64 field holds ${v}, beyond any file`) : Number(v);
  };
  // The end-of-central-directory record: the last one, within 64 KB (its comment) of the end.
  let end = -1;
  for (let e = zip.length - 22; e >= 0 && e >= zip.length - 22 - 0xffff; e--) {
    if (view.getUint32(e, true) === 0x06054b50) {
      end = e;
      break;
    }
  }
  if (end < 0) fail('no end-of-central-directory record (truncated, or not a zip)');
  let count = u16(end + 10);
  let dirSize = u32(end + 12);
  let dirOffset = u32(end + 16);
  if (end >= 20 && u32(end - 20) === 0x07064b50) {
    const at = u64(end - 12);
    if (u32(at) !== 0x06064b50) fail('the zip64 end record is not where its locator says');
    count = u64(at + 32);
    dirSize = u64(at + 40);
    dirOffset = u64(at + 48);
  }
  if (dirOffset + dirSize > zip.length) fail(`the central directory (${dirSize} bytes at ${dirOffset}) lies beyond the end of the file (${zip.length} bytes)`);
  if (count * 46 > dirSize) fail(`the central directory cannot hold the ${count} entries it announces`);
  const members: [string, Uint8Array][] = [];
  let p = dirOffset;
  for (let i = 0; i < count; i++) {
    if (u32(p) !== 0x02014b50) fail(`central directory entry ${i} is damaged`);
    const flags = u16(p + 8);
    const method = u16(p + 10);
    const crc = u32(p + 16);
    let packed = u32(p + 20);
    let size = u32(p + 24);
    const nameLen = u16(p + 28);
    const extraLen = u16(p + 30);
    let local = u32(p + 42);
    if (p + 46 + nameLen + extraLen > zip.length) fail(`central directory entry ${i} is truncated`);
    const name = new TextDecoder().decode(zip.subarray(p + 46, p + 46 + nameLen));
    // zip64: the 0xFFFFFFFF fields are in the extra field 0x0001, in this order
    for (let x = p + 46 + nameLen; x + 4 <= p + 46 + nameLen + extraLen;) {
      const id = u16(x);
      const len = u16(x + 2);
      if (id === 1) {
        let f = x + 4;
        if (size === 0xffffffff) {
          size = u64(f);
          f += 8;
        }
        if (packed === 0xffffffff) {
          packed = u64(f);
          f += 8;
        }
        if (local === 0xffffffff) local = u64(f);
      }
      x += 4 + len;
    }
    p += 46 + nameLen + extraLen + u16(p + 32);
    if (flags & 1) fail(`${name} is encrypted`);
    if (u32(local) !== 0x04034b50) fail(`the local header of ${name} is damaged`);
    const start = local + 30 + u16(local + 26) + u16(local + 28);
    if (start + packed > zip.length) fail(`${name} (${packed} bytes at ${start}) lies beyond the end of the file`);
    const raw = zip.subarray(start, start + packed);
    let data: Uint8Array;
    if (method === 0) {
      if (packed !== size) fail(`${name} is stored with ${packed} bytes but says it holds ${size}`);
      data = raw;
    } else if (method === 8) {
      // deflate expands at most ~1032x: a larger size is a lie (and would be a huge allocation)
      if (size > packed * 1032 + 1024) fail(`${name} says it inflates to ${size} bytes from ${packed}, which deflate cannot`);
      try {
        data = inflateSync(raw, { out: new Uint8Array(size + 1) });
      } catch (err) {
        return fail(`${name} does not inflate (${(err as Error).message})`);
      }
      if (data.length !== size) fail(`${name} inflates to ${data.length === size + 1 ? 'more than' : data.length} bytes, not ${size}`);
    } else {
      return fail(`${name} uses compression method ${method}; numpy writes stored or deflated members`);
    }
    if (crc32(data) !== crc) fail(`${name} fails its CRC-32 check (the file is damaged)`);
    members.push([name, data]);
  }
  return members;
}

/** Writes arrays as an uncompressed .npz, like np.savez (atomically: temporary file, then rename). */
export function writeNpz(file: string, arrays: Record<string, { data: Float64Array | Float32Array | Uint8Array; shape: number[] }>): void {
  const members: Record<string, [Uint8Array, { level: 0 }]> = {};
  for (const [name, a] of Object.entries(arrays)) members[`${name}.npy`] = [encodeNpy(a.data, a.shape), { level: 0 }];
  writeFileAtomic(file, zipSync(members));
}

/** Saves FID statistics the way pytorch-fid does (`mu`, `sigma`, float64). */
export function saveStatsNpz(file: string, stats: GaussianStats): void {
  checkStats(stats, file);
  writeNpz(file, { mu: { data: stats.mu, shape: [stats.dim] }, sigma: { data: stats.sigma, shape: [stats.dim, stats.dim] } });
}

/**
 * Reads `mu` and `sigma` from pytorch-fid stats or an ADM reference batch. Returns undefined when the
 * file has neither but holds `arr_0` (ADM batches without precomputed statistics): see `npzContents`.
 */
export function statsFromNpzArrays(arrays: Map<string, NpyArray>, file: string): GaussianStats | undefined {
  const mu = arrays.get('mu');
  const sigma = arrays.get('sigma');
  if (mu && sigma) {
    if (mu.shape.length !== 1) throw new Error(`${file}: 'mu' has shape [${mu.shape}], expected a vector`);
    const d = mu.shape[0];
    if (sigma.shape.length !== 2 || sigma.shape[0] !== d || sigma.shape[1] !== d) {
      throw new Error(`${file}: 'sigma' has shape [${sigma.shape}], expected [${d}, ${d}] to match 'mu'`);
    }
    if (mu.dtype === 'uint8' || sigma.dtype === 'uint8') throw new Error(`${file}: 'mu'/'sigma' must be float arrays`);
    const stats = { mu: mu.data as Float64Array, sigma: sigma.data as Float64Array, dim: d };
    checkStats(stats, file);
    return stats;
  }
  if (mu || sigma) throw new Error(`${file}: has '${mu ? 'mu' : 'sigma'}' but not '${mu ? 'sigma' : 'mu'}'`);
  if (!arrays.has('arr_0')) {
    throw new Error(`${file}: no 'mu'/'sigma' statistics and no 'arr_0' array (found: ${[...arrays.keys()].join(', ') || 'nothing'})`);
  }
  return undefined;
}
