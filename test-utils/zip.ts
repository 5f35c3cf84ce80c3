/**
 * Tests that edit bytes inside a zip archive (e.g. a pickle inside a .pt checkpoint, to make it name a
 * foreign global) must then fix the entries' CRC-32s, or the reader rejects the file for damage before it
 * reaches what the test is about. `resealZip` recomputes every entry's CRC in place (stored entries only).
 */
export function resealZip(bytes: Uint8Array, crc32: (data: Uint8Array) => number): Uint8Array {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let eocd = bytes.length - 22;
  while (eocd >= 0 && view.getUint32(eocd, true) !== 0x06054b50) eocd--;
  if (eocd < 0) throw new Error('resealZip: no end-of-central-directory record');
  const count = view.getUint16(eocd + 10, true);
  let o = view.getUint32(eocd + 16, true);
  for (let i = 0; i < count; i++) {
    const size = view.getUint32(o + 24, true);
    const nameLength = view.getUint16(o + 28, true);
    const local = view.getUint32(o + 42, true);
    const data = local + 30 + view.getUint16(local + 26, true) + view.getUint16(local + 28, true);
    const crc = crc32(bytes.subarray(data, data + size));
    view.setUint32(o + 16, crc, true);
    view.setUint32(local + 14, crc, true);
    o += 46 + nameLength + view.getUint16(o + 30, true) + view.getUint16(o + 32, true);
  }
  return bytes;
}
