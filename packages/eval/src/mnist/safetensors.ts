/**
 * A minimal reader/writer for the safetensors format (float32 tensors only), enough to ship weights
 * that any framework can load (`safetensors.numpy.load_file`, `safetensors.torch.load_file`, ...).
 *
 * Layout: 8-byte little-endian header length N, then N bytes of JSON
 * `{ "<name>": { "dtype": "F32", "shape": [...], "data_offsets": [begin, end] }, "__metadata__": {...} }`,
 * then the raw little-endian data; offsets are relative to the end of the header.
 */

export interface NamedTensor {
  shape: number[];
  data: Float32Array;
}

interface HeaderEntry {
  dtype: string;
  shape: number[];
  data_offsets: [number, number];
}

/** Serialises float32 tensors (in the given key order) with optional string metadata. */
export function writeSafetensors(tensors: Record<string, NamedTensor>, metadata: Record<string, string> = {}): Uint8Array {
  const header: Record<string, HeaderEntry | Record<string, string>> = {};
  if (Object.keys(metadata).length > 0) header.__metadata__ = metadata;
  let offset = 0;
  for (const [name, t] of Object.entries(tensors)) {
    const size = t.shape.reduce((a, b) => a * b, 1);
    if (size !== t.data.length) throw new Error(`Tensor "${name}": shape [${t.shape}] needs ${size} values, got ${t.data.length}.`);
    header[name] = { dtype: 'F32', shape: t.shape, data_offsets: [offset, offset + 4 * size] };
    offset += 4 * size;
  }
  // Pad the JSON with spaces so the data starts 8-byte aligned (what the reference writer does).
  let json = JSON.stringify(header);
  while ((8 + json.length) % 8 !== 0) json += ' ';
  const headerBytes = new TextEncoder().encode(json);
  const out = new Uint8Array(8 + headerBytes.length + offset);
  const view = new DataView(out.buffer);
  view.setBigUint64(0, BigInt(headerBytes.length), true);
  out.set(headerBytes, 8);
  let pos = 8 + headerBytes.length;
  for (const t of Object.values(tensors)) {
    for (let i = 0; i < t.data.length; i++, pos += 4) view.setFloat32(pos, t.data[i], true);
  }
  return out;
}

/** Parses a safetensors file holding F32 tensors; throws naming `source` when anything is inconsistent. */
export function readSafetensors(
  bytes: Uint8Array,
  source = 'safetensors data',
): { tensors: Map<string, NamedTensor>; metadata: Record<string, string> } {
  const fail = (why: string): never => {
    throw new Error(`${source} is not a valid safetensors file: ${why}.`);
  };
  if (bytes.length < 8) fail(`only ${bytes.length} bytes`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLength = Number(view.getBigUint64(0, true));
  if (headerLength > bytes.length - 8) fail(`header length ${headerLength} exceeds the file size ${bytes.length}`);
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + headerLength))) as Record<string, unknown>;
  } catch (err) {
    return fail(`header is not JSON (${(err as Error).message})`);
  }
  const dataStart = 8 + headerLength;
  const dataLength = bytes.length - dataStart;
  const tensors = new Map<string, NamedTensor>();
  let metadata: Record<string, string> = {};
  for (const [name, value] of Object.entries(header)) {
    if (name === '__metadata__') {
      metadata = value as Record<string, string>;
      continue;
    }
    const entry = value as Partial<HeaderEntry>;
    if (entry.dtype !== 'F32') fail(`tensor "${name}" has dtype ${entry.dtype}; only F32 is supported`);
    const shape = entry.shape;
    const offsets = entry.data_offsets;
    if (!Array.isArray(shape) || !Array.isArray(offsets) || offsets.length !== 2) fail(`tensor "${name}" lacks shape or data_offsets`);
    const [begin, end] = offsets as [number, number];
    const size = (shape as number[]).reduce((a, b) => a * b, 1);
    if (end - begin !== 4 * size || begin < 0 || end > dataLength) {
      fail(`tensor "${name}" [${shape}] has data_offsets [${begin}, ${end}] but ${dataLength} data bytes`);
    }
    const data = new Float32Array(size);
    for (let i = 0; i < size; i++) data[i] = view.getFloat32(dataStart + begin + 4 * i, true);
    tensors.set(name, { shape: shape as number[], data });
  }
  return { tensors, metadata };
}
