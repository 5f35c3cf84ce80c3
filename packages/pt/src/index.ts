/**
 * @causalfusion/pt: PyTorch checkpoints (`torch.save`'s zip format, torch >= 1.6) read in JavaScript, with
 * no Python and without executing the pickle: a reader for exactly what a state_dict checkpoint holds.
 *
 * ```ts
 * const ckpt = readTorchCheckpoint('checkpoint.pt');       // { root, prefix }: plain values, tensors decoded
 * const weights = checkpointStateDict(ckpt.root, 'ema');   // train.py's {"model", "ema", ...} or a bare state_dict
 * const args = checkpointArgs(ckpt.root);                  // train.py's argparse.Namespace, or null
 * ```
 *
 * Unlike `torch.load`, nothing named in the file is imported or run: the pickle may only name
 * collections.OrderedDict, torch._utils._rebuild_tensor_v2 / _rebuild_parameter, torch.<X>Storage and
 * argparse.Namespace; any other global is refused with an Error naming it.
 */
import * as fs from 'fs';
import { crc32, halfToFloat } from '@causalfusion/safetensors';
import { storageRef, unpickle, type Namespace, type StorageDtype, type StorageRef, type TensorRef } from './unpickle';
import { fileSource, memorySource, readZip, type ByteSource, type ZipEntry } from './zip';

export type { StorageDtype } from './unpickle';

/** A decoded tensor: floating types as float32 (float16 / bfloat16 exactly, float64 rounded), integers and bools as float64. */
export interface TorchTensor {
  kind: 'tensor';
  dtype: StorageDtype;
  shape: number[];
  data: Float32Array | Float64Array;
}

/** What a checkpoint holds, as plain values: Map (OrderedDict), object (dict), array (list / tuple), TorchTensor, Namespace, string, number, boolean, null, Uint8Array (bytes). */
export type TorchValue = unknown;

export interface TorchCheckpoint {
  /** The unpickled object. */
  root: TorchValue;
  /** The archive's folder name (torch.save uses the file's stem). */
  prefix: string;
}

const ELEMENT_BYTES: Record<StorageDtype, number> = {
  float32: 4,
  float16: 2,
  bfloat16: 2,
  float64: 8,
  int64: 8,
  int32: 4,
  int16: 2,
  int8: 1,
  uint8: 1,
  bool: 1,
};

/** Decode element `i` of a storage's bytes. */
function elementReader(dtype: StorageDtype, view: DataView, source: string): (i: number) => number {
  switch (dtype) {
    case 'float32':
      return (i) => view.getFloat32(4 * i, true);
    case 'float16':
      return (i) => halfToFloat(view.getUint16(2 * i, true));
    case 'bfloat16': {
      const scratch = new DataView(new ArrayBuffer(4));
      return (i) => (scratch.setUint32(0, view.getUint16(2 * i, true) << 16), scratch.getFloat32(0));
    }
    case 'float64':
      return (i) => view.getFloat64(8 * i, true);
    case 'int64':
      return (i) => {
        const v = view.getBigInt64(8 * i, true);
        if (v > BigInt(Number.MAX_SAFE_INTEGER) || v < BigInt(Number.MIN_SAFE_INTEGER)) throw new Error(`${source}: an int64 value beyond 2^53`);
        return Number(v);
      };
    case 'int32':
      return (i) => view.getInt32(4 * i, true);
    case 'int16':
      return (i) => view.getInt16(2 * i, true);
    case 'int8':
      return (i) => view.getInt8(i);
    case 'uint8':
    case 'bool':
      return (i) => view.getUint8(i);
  }
}

/** Materialize a strided view of a storage, every index checked against the storage. */
function decodeTensor(ref: TensorRef, storageBytes: Uint8Array, source: string): TorchTensor {
  const { storage, offset, shape, stride } = ref;
  const elementBytes = ELEMENT_BYTES[storage.dtype];
  if (storageBytes.length < storage.numel * elementBytes) {
    throw new Error(`${source}: storage ${storage.key} holds ${storageBytes.length} bytes, fewer than its ${storage.numel} ${storage.dtype} values`);
  }
  const numel = shape.reduce((a, b) => a * b, 1);
  if (!Number.isSafeInteger(numel) || numel > 2 ** 31) throw new Error(`${source}: a tensor of shape [${shape}] is too large`);
  const last = numel === 0 ? -1 : offset + shape.reduce((a, n, i) => a + (n - 1) * stride[i], 0);
  if (last >= storage.numel) throw new Error(`${source}: a tensor of shape [${shape}] at offset ${offset} reads beyond its storage of ${storage.numel} values`);
  // the common case, a contiguous float32 tensor: one copy of its bytes (little-endian, as JS typed arrays here)
  let expected = 1;
  const contiguous = shape.every((_, d) => {
    const i = shape.length - 1 - d;
    const ok = shape[i] === 1 || stride[i] === expected;
    expected *= shape[i];
    return ok;
  });
  if (contiguous && storage.dtype === 'float32') {
    const data = new Float32Array(numel);
    new Uint8Array(data.buffer).set(storageBytes.subarray(offset * 4, (offset + numel) * 4));
    return { kind: 'tensor', dtype: 'float32', shape: [...shape], data };
  }
  const read = elementReader(storage.dtype, new DataView(storageBytes.buffer, storageBytes.byteOffset, storageBytes.byteLength), source);
  const isFloat = storage.dtype.startsWith('float') || storage.dtype === 'bfloat16';
  const data = isFloat ? new Float32Array(numel) : new Float64Array(numel);
  // walk the view in row-major order (strides may be anything torch allows: transposed, expanded)
  const index = new Array<number>(shape.length).fill(0);
  let at = offset;
  for (let i = 0; i < numel; i++) {
    data[i] = read(at);
    for (let d = shape.length - 1; d >= 0; d--) {
      index[d]++;
      at += stride[d];
      if (index[d] < shape[d]) break;
      at -= stride[d] * shape[d];
      index[d] = 0;
    }
  }
  return { kind: 'tensor', dtype: storage.dtype, shape: [...shape], data };
}

/** Replace every TensorRef in the unpickled value by its decoded TorchTensor. */
function resolve(value: unknown, load: (ref: TensorRef) => TorchTensor, depth = 0): unknown {
  if (depth > 100) throw new Error('the checkpoint nests values more than 100 levels deep');
  if (value instanceof Map) return new Map([...value].map(([k, v]) => [k, resolve(v, load, depth + 1)]));
  if (Array.isArray(value)) return value.map((v) => resolve(v, load, depth + 1));
  if (value instanceof Uint8Array || value === null || typeof value !== 'object') return value;
  const kind = (value as { kind?: string }).kind;
  if (kind === 'tensor') return load(value as TensorRef);
  if (kind === 'namespace') return { kind, attributes: resolve((value as Namespace).attributes, load, depth + 1) };
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, resolve(v, load, depth + 1)]));
}

/** Parse the bytes of a torch.save file. `source` names it in errors. */
export function parseTorchCheckpoint(bytes: Uint8Array, source = 'checkpoint'): TorchCheckpoint {
  return parseSource(memorySource(bytes), source);
}

function parseSource(src: ByteSource, source: string): TorchCheckpoint {
  const entries = readZip(src, source);
  const pkl = [...entries.keys()].find((n) => /^[^/]+\/data\.pkl$/.test(n));
  if (!pkl) throw new Error(`${source}: the zip has no <name>/data.pkl; it is not a torch.save checkpoint`);
  const prefix = pkl.slice(0, -'/data.pkl'.length);
  const slice = (e: ZipEntry) => {
    if (e.size > 2 ** 31 - 1) throw new Error(`${source}: ${e.name} is ${(e.size / 2 ** 30).toFixed(1)} GB, more than one tensor read can hold (2 GB)`);
    const bytes = src.read(e.offset, e.size);
    // zip's CRC-32 catches damaged data that would otherwise parse as other numbers
    if (crc32(bytes) !== e.crc) throw new Error(`${source}: ${e.name} fails its CRC-32 check (the file is damaged)`);
    return bytes;
  };
  const storages = new Map<string, StorageRef>();
  const raw = unpickle(slice(entries.get(pkl)!), source, (pid) => {
    const ref = storageRef(pid, source);
    const seen = storages.get(ref.key);
    if (seen && (seen.dtype !== ref.dtype || seen.numel !== ref.numel)) throw new Error(`${source}: storage ${ref.key} is referenced with two types`);
    storages.set(ref.key, ref);
    return ref;
  });
  const root = resolve(raw, (ref) => {
    const entry = entries.get(`${prefix}/data/${ref.storage.key}`);
    if (!entry) throw new Error(`${source}: storage ${ref.storage.key} is missing from the archive (truncated file?)`);
    return decodeTensor(ref, slice(entry), source);
  });
  return { root, prefix };
}

/**
 * Read a torch.save file ({@link parseTorchCheckpoint}), entry by entry: files of any size (each storage
 * up to 2 GB) without holding the whole archive in memory.
 */
export function readTorchCheckpoint(file: string): TorchCheckpoint {
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch (e) {
    throw new Error(`${file}: cannot read it (${(e as Error).message})`);
  }
  try {
    const size = fs.fstatSync(fd).size;
    if (!fs.fstatSync(fd).isFile()) throw new Error(`${file}: is not a file`);
    return parseSource(
      fileSource(fd, size, (f, buffer, offset, length, position) => fs.readSync(f, buffer, offset, length, position)),
      file,
    );
  } finally {
    fs.closeSync(fd);
  }
}

const isTensor = (v: unknown): v is TorchTensor => typeof v === 'object' && v !== null && (v as TorchTensor).kind === 'tensor';

/** A Map of tensors (a state_dict), or null. */
function asStateDict(v: unknown): Map<string, TorchTensor> | null {
  const entries =
    v instanceof Map ? [...v] : typeof v === 'object' && v !== null && !Array.isArray(v) && !(v as { kind?: string }).kind ? Object.entries(v) : null;
  if (!entries || entries.length === 0 || !entries.every(([k, t]) => typeof k === 'string' && isTensor(t))) return null;
  return new Map(entries as [string, TorchTensor][]);
}

/**
 * The weights of a checkpoint as key -> {shape, data (float32)}: from train.py's layout
 * ({"model", "ema", "opt", "args", ...}: `which` picks ema (default) or model) or a bare state_dict.
 * DDP's "module." prefix is removed.
 */
export function checkpointStateDict(
  root: TorchValue,
  which: 'ema' | 'model' = 'ema',
  source = 'checkpoint',
): Map<string, { shape: number[]; data: Float32Array }> {
  let dict = asStateDict(root);
  if (!dict) {
    const container = root instanceof Map ? Object.fromEntries(root) : (root as Record<string, unknown>);
    if (typeof container !== 'object' || container === null) throw new Error(`${source}: holds neither a state_dict nor train.py's {"model", "ema", ...}`);
    const keys = Object.keys(container);
    if (!(which in container)) {
      throw new Error(`${source}: has no "${which}" weights (it holds ${keys.join(', ')}); pick another with --weights ${which === 'ema' ? 'model' : 'ema'}`);
    }
    dict = asStateDict(container[which]);
    if (!dict) throw new Error(`${source}: "${which}" is not a state_dict of tensors`);
  }
  const out = new Map<string, { shape: number[]; data: Float32Array }>();
  for (const [key, t] of dict) {
    if (!(t.data instanceof Float32Array)) throw new Error(`${source}: ${key} is a ${t.dtype} tensor; the weights must be floating point`);
    out.set(key.startsWith('module.') ? key.slice('module.'.length) : key, { shape: t.shape, data: t.data });
  }
  return out;
}

/** train.py's `args` (an argparse.Namespace) as a plain object, or null when the checkpoint has none. */
export function checkpointArgs(root: TorchValue): Record<string, unknown> | null {
  const args = root instanceof Map ? root.get('args') : typeof root === 'object' && root !== null ? (root as Record<string, unknown>).args : undefined;
  if (typeof args === 'object' && args !== null && (args as Namespace).kind === 'namespace') return (args as Namespace).attributes;
  return null;
}
