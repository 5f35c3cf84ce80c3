/**
 * numpy .npy / .npz files: the format of pytorch-fid's saved statistics (`mu`, `sigma`) and of the ADM
 * evaluator's reference batches (`mu`, `sigma`, plus `arr_0` = the images). An .npz is a zip of .npy
 * members, stored (np.savez, written with zip64 extra fields) or deflated (np.savez_compressed).
 */
import * as fs from 'node:fs';
import { unzipSync, zipSync } from 'fflate';
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
  const header = Buffer.from(bytes.subarray(offset, offset + headerLen)).toString('latin1');
  const descr = /'descr'\s*:\s*'([^']*)'/.exec(header)?.[1];
  const fortran = /'fortran_order'\s*:\s*(True|False)/.exec(header)?.[1] === 'True';
  const shapeText = /'shape'\s*:\s*\(([^)]*)\)/.exec(header)?.[1];
  if (descr === undefined || shapeText === undefined) throw new Error(`${label}: malformed .npy header ${JSON.stringify(header.trim())}`);
  const shape = shapeText
    .split(',')
    .map((t) => t.trim())
    .filter((t) => t.length > 0)
    .map(Number);
  const count = shape.reduce((a, b) => a * b, 1);
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

/** Serialises a float64 or float32 array as .npy (format 1.0, little endian, C order). */
export function encodeNpy(data: Float64Array | Float32Array, shape: number[]): Uint8Array {
  const count = shape.reduce((a, b) => a * b, 1);
  if (count !== data.length) throw new Error(`shape [${shape}] holds ${count} values but the array has ${data.length}`);
  const descr = data instanceof Float32Array ? '<f4' : '<f8';
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
    zipped = fs.readFileSync(file);
  } catch (err) {
    throw new Error(`cannot read ${file}: ${(err as Error).message}`);
  }
  let members: Record<string, Uint8Array>;
  try {
    members = unzipSync(zipped);
  } catch (err) {
    throw new Error(`${file} is not a numpy .npz (zip) file: ${(err as Error).message}`);
  }
  const arrays = new Map<string, NpyArray>();
  for (const [name, bytes] of Object.entries(members)) {
    if (!name.endsWith('.npy')) continue;
    const key = name.slice(0, -4);
    arrays.set(key, parseNpy(bytes, `${file}:${key}`));
  }
  return arrays;
}

/** Writes arrays as an uncompressed .npz, like np.savez. */
export function writeNpz(file: string, arrays: Record<string, { data: Float64Array | Float32Array; shape: number[] }>): void {
  const members: Record<string, [Uint8Array, { level: 0 }]> = {};
  for (const [name, a] of Object.entries(arrays)) members[`${name}.npy`] = [encodeNpy(a.data, a.shape), { level: 0 }];
  fs.writeFileSync(file, zipSync(members));
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
