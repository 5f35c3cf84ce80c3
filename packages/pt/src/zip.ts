/**
 * The part of the zip format torch.save writes: stored (uncompressed) entries found through the central
 * directory, with zip64 sizes and offsets for files over 4 GB. Every offset and size is checked against
 * the file, so a truncated or corrupt archive is an Error naming the problem, never a read out of range.
 */

export interface ZipEntry {
  name: string;
  /** Where the entry's bytes start in the archive, and how many. */
  offset: number;
  size: number;
}

const EOCD = 0x06054b50;
const ZIP64_LOCATOR = 0x07064b50;
const ZIP64_EOCD = 0x06064b50;
const CENTRAL = 0x02014b50;
const LOCAL = 0x04034b50;

function fail(source: string, problem: string): never {
  throw new Error(`${source}: ${problem}`);
}

/** A little-endian reader over the archive that refuses reads beyond its end. */
class Reader {
  private readonly view: DataView;
  constructor(
    readonly bytes: Uint8Array,
    private readonly source: string,
  ) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }
  check(offset: number, length: number, what: string): void {
    if (!(offset >= 0 && length >= 0 && offset + length <= this.bytes.length)) fail(this.source, `${what} lies outside the file (truncated or corrupt zip)`);
  }
  u16(o: number): number {
    this.check(o, 2, 'a zip record');
    return this.view.getUint16(o, true);
  }
  u32(o: number): number {
    this.check(o, 4, 'a zip record');
    return this.view.getUint32(o, true);
  }
  u64(o: number): number {
    this.check(o, 8, 'a zip record');
    const v = this.view.getBigUint64(o, true);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) fail(this.source, 'a zip64 size or offset is too large');
    return Number(v);
  }
}

/** The entries of a zip archive, by name. */
export function readZip(bytes: Uint8Array, source: string): Map<string, ZipEntry> {
  const r = new Reader(bytes, source);
  if (bytes.length < 22) fail(source, `is ${bytes.length} bytes, too short for a zip archive`);
  if (r.u32(0) !== LOCAL) {
    // torch.save before 1.6 wrote a bare pickle stream; it starts with a pickle PROTO opcode
    if (bytes[0] === 0x80) fail(source, "is a legacy (non-zip) PyTorch file; re-save it with torch.save(obj, path) on torch >= 1.6 (the zip format)");
    fail(source, 'is not a zip archive (PyTorch checkpoints are zip files written by torch.save)');
  }
  // the end-of-central-directory record is within the last 64 KB + 22 bytes
  let eocd = -1;
  for (let o = bytes.length - 22; o >= Math.max(0, bytes.length - 65557); o--) {
    if (r.u32(o) === EOCD) {
      eocd = o;
      break;
    }
  }
  if (eocd < 0) fail(source, 'has no end-of-central-directory record (truncated zip)');
  let count = r.u16(eocd + 10);
  let dirSize = r.u32(eocd + 12);
  let dirOffset = r.u32(eocd + 16);
  if (eocd >= 20 && r.u32(eocd - 20) === ZIP64_LOCATOR) {
    const z64 = r.u64(eocd - 20 + 8);
    if (r.u32(z64) !== ZIP64_EOCD) fail(source, 'has a broken zip64 end-of-central-directory record');
    count = r.u64(z64 + 32);
    dirSize = r.u64(z64 + 40);
    dirOffset = r.u64(z64 + 48);
  }
  r.check(dirOffset, dirSize, 'the central directory');
  const entries = new Map<string, ZipEntry>();
  let o = dirOffset;
  for (let i = 0; i < count; i++) {
    if (r.u32(o) !== CENTRAL) fail(source, `central directory entry ${i} is corrupt`);
    const method = r.u16(o + 10);
    let compressed = r.u32(o + 20);
    let size = r.u32(o + 24);
    const nameLength = r.u16(o + 28);
    const extraLength = r.u16(o + 30);
    const commentLength = r.u16(o + 32);
    let local = r.u32(o + 42);
    r.check(o + 46, nameLength + extraLength, 'a central directory entry');
    const name = new TextDecoder().decode(bytes.subarray(o + 46, o + 46 + nameLength));
    // zip64 extra field: the 64-bit values of the fields that read 0xffffffff, in order
    for (let e = o + 46 + nameLength; e + 4 <= o + 46 + nameLength + extraLength; ) {
      const id = r.u16(e);
      const len = r.u16(e + 2);
      if (id === 0x0001) {
        let p = e + 4;
        if (size === 0xffffffff) (size = r.u64(p)), (p += 8);
        if (compressed === 0xffffffff) (compressed = r.u64(p)), (p += 8);
        if (local === 0xffffffff) local = r.u64(p);
      }
      e += 4 + len;
    }
    if (method !== 0) fail(source, `entry ${name} is compressed (method ${method}); torch.save writes stored entries only`);
    if (compressed !== size) fail(source, `entry ${name} has inconsistent sizes`);
    if (r.u32(local) !== LOCAL) fail(source, `entry ${name} has no local header at its offset`);
    const dataOffset = local + 30 + r.u16(local + 26) + r.u16(local + 28);
    r.check(dataOffset, size, `entry ${name}`);
    entries.set(name, { name, offset: dataOffset, size });
    o += 46 + nameLength + extraLength + commentLength;
  }
  return entries;
}
