/**
 * The part of the zip format torch.save writes: stored (uncompressed) entries found through the central
 * directory, with zip64 sizes and offsets for files over 4 GB. Every offset and size is checked against
 * the file, so a truncated or corrupt archive is an Error naming the problem, never a read out of range.
 * The archive is read through a {@link ByteSource}, so a file larger than one Buffer (2 GB) is read entry by
 * entry.
 */

export interface ZipEntry {
  name: string;
  /** The CRC-32 the central directory records for the entry's bytes. */
  crc: number;
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

/** Random access to the bytes of an archive: in memory, or a file read piece by piece (files over 2 GB). */
export interface ByteSource {
  readonly length: number;
  /** `length` bytes at `offset` (the caller has checked the range). */
  read(offset: number, length: number): Uint8Array;
}

export function memorySource(bytes: Uint8Array): ByteSource {
  return { length: bytes.length, read: (offset, length) => bytes.subarray(offset, offset + length) };
}

/** Reads of an open file descriptor; a single read is limited to what a Buffer holds (2 GB). */
export function fileSource(
  fd: number,
  size: number,
  readSync: (fd: number, buffer: Uint8Array, offset: number, length: number, position: number) => number,
): ByteSource {
  return {
    length: size,
    read(offset, length) {
      const out = new Uint8Array(length);
      for (let done = 0; done < length;) {
        const n = readSync(fd, out, done, Math.min(length - done, 1 << 30), offset + done);
        if (n <= 0) throw new Error('the file ended early');
        done += n;
      }
      return out;
    },
  };
}

/** A little-endian reader over the archive that refuses reads beyond its end. */
class Reader {
  constructor(
    readonly src: ByteSource,
    private readonly source: string,
  ) {}
  check(offset: number, length: number, what: string): void {
    if (!(offset >= 0 && length >= 0 && offset + length <= this.src.length)) fail(this.source, `${what} lies outside the file (truncated or corrupt zip)`);
  }
  private view(o: number, n: number): DataView {
    this.check(o, n, 'a zip record');
    const b = this.src.read(o, n);
    return new DataView(b.buffer, b.byteOffset, n);
  }
  u16(o: number): number {
    return this.view(o, 2).getUint16(0, true);
  }
  u32(o: number): number {
    return this.view(o, 4).getUint32(0, true);
  }
  u64(o: number): number {
    const v = this.view(o, 8).getBigUint64(0, true);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) fail(this.source, 'a zip64 size or offset is too large');
    return Number(v);
  }
}

/** The entries of a zip archive, by name. */
export function readZip(src: ByteSource, source: string): Map<string, ZipEntry> {
  const r = new Reader(src, source);
  if (src.length < 22) fail(source, `is ${src.length} bytes, too short for a zip archive`);
  if (r.u32(0) !== LOCAL) {
    // torch.save before 1.6 wrote a bare pickle stream; it starts with a pickle PROTO opcode
    if (src.read(0, 1)[0] === 0x80) fail(source, 'is a legacy (non-zip) PyTorch file; re-save it with torch.save(obj, path) on torch >= 1.6 (the zip format)');
    fail(source, 'is not a zip archive (PyTorch checkpoints are zip files written by torch.save)');
  }
  // the end-of-central-directory record is within the last 64 KB + 22 bytes
  let eocd = -1;
  const tailStart = Math.max(0, src.length - 65557);
  const tail = src.read(tailStart, src.length - tailStart);
  const tailView = new DataView(tail.buffer, tail.byteOffset, tail.length);
  for (let o = tail.length - 22; o >= 0; o--) {
    if (tailView.getUint32(o, true) === EOCD) {
      eocd = tailStart + o;
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
    const crc = r.u32(o + 16);
    let compressed = r.u32(o + 20);
    let size = r.u32(o + 24);
    const nameLength = r.u16(o + 28);
    const extraLength = r.u16(o + 30);
    const commentLength = r.u16(o + 32);
    let local = r.u32(o + 42);
    r.check(o + 46, nameLength + extraLength, 'a central directory entry');
    const name = new TextDecoder().decode(src.read(o + 46, nameLength));
    // zip64 extra field: the 64-bit values of the fields that read 0xffffffff, in order
    for (let e = o + 46 + nameLength; e + 4 <= o + 46 + nameLength + extraLength;) {
      const id = r.u16(e);
      const len = r.u16(e + 2);
      if (id === 0x0001) {
        let p = e + 4;
        if (size === 0xffffffff) ((size = r.u64(p)), (p += 8));
        if (compressed === 0xffffffff) ((compressed = r.u64(p)), (p += 8));
        if (local === 0xffffffff) local = r.u64(p);
      }
      e += 4 + len;
    }
    if (method !== 0) fail(source, `entry ${name} is compressed (method ${method}); torch.save writes stored entries only`);
    if (compressed !== size) fail(source, `entry ${name} has inconsistent sizes`);
    if (r.u32(local) !== LOCAL) fail(source, `entry ${name} has no local header at its offset`);
    const dataOffset = local + 30 + r.u16(local + 26) + r.u16(local + 28);
    r.check(dataOffset, size, `entry ${name}`);
    entries.set(name, { name, crc, offset: dataOffset, size });
    o += 46 + nameLength + extraLength + commentLength;
  }
  return entries;
}
