/**
 * GPT-2's byte <-> unicode-character map and the UTF-8 helpers the tokenizer is built on.
 *
 * Byte-level BPE works on the 256 byte values, but vocab files store tokens as text. GPT-2 maps each
 * byte to a printable character so that a token like " world" is written "Ġworld": the printable
 * ASCII and Latin-1 bytes keep their own character, the other 68 bytes (controls, space, 0x7F-0xA0,
 * 0xAD) are shifted to U+0100 onwards in byte order.
 */

function buildByteToChar(): string[] {
  const keep = (b: number) => (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  const out = new Array<string>(256);
  let shifted = 0;
  for (let b = 0; b < 256; b++) {
    out[b] = String.fromCharCode(keep(b) ? b : 256 + shifted++);
  }
  return out;
}

/** `BYTE_TO_CHAR[b]` is the character GPT-2's vocab files use for byte `b` (`bytes_to_unicode()`). */
export const BYTE_TO_CHAR: readonly string[] = buildByteToChar();

/** The inverse of {@link BYTE_TO_CHAR}: character code -> byte. */
export const CHAR_TO_BYTE: ReadonlyMap<string, number> = new Map(BYTE_TO_CHAR.map((c, b) => [c, b]));

/** Bytes -> the byte-level string a vocab file would use ("Ġworld" for " world"). */
export function bytesToTokenString(bytes: ArrayLike<number>): string {
  let s = '';
  for (let i = 0; i < bytes.length; i++) s += BYTE_TO_CHAR[bytes[i]];
  return s;
}

/**
 * A byte-level vocab string -> its bytes, or `undefined` when it holds a character outside the
 * 256-character alphabet (such an entry cannot come out of byte-level BPE, e.g. an added token).
 */
export function tokenStringToBytes(token: string): Uint8Array | undefined {
  const out = new Uint8Array(token.length);
  for (let i = 0; i < token.length; i++) {
    const b = CHAR_TO_BYTE.get(token[i]);
    if (b === undefined) return undefined;
    out[i] = b;
  }
  return out;
}

/**
 * UTF-8 encodes `text[start, end)` into `out` (which must hold 3 bytes per UTF-16 unit) and returns
 * the byte count. A lone surrogate becomes U+FFFD (EF BF BD), exactly as TextEncoder does; Python's
 * encoder.py would raise instead, so this is the one input where we are more lenient than it.
 */
export function utf8Encode(text: string, start: number, end: number, out: Uint8Array): number {
  let n = 0;
  for (let i = start; i < end; i++) {
    let c = text.charCodeAt(i);
    if (c < 0x80) {
      out[n++] = c;
      continue;
    }
    if (c < 0x800) {
      out[n++] = 0xc0 | (c >> 6);
      out[n++] = 0x80 | (c & 0x3f);
      continue;
    }
    if (c >= 0xd800 && c <= 0xdfff) {
      const next = i + 1 < end ? text.charCodeAt(i + 1) : 0;
      if (c <= 0xdbff && next >= 0xdc00 && next <= 0xdfff) {
        const cp = 0x10000 + ((c - 0xd800) << 10) + (next - 0xdc00);
        i++;
        out[n++] = 0xf0 | (cp >> 18);
        out[n++] = 0x80 | ((cp >> 12) & 0x3f);
        out[n++] = 0x80 | ((cp >> 6) & 0x3f);
        out[n++] = 0x80 | (cp & 0x3f);
        continue;
      }
      c = 0xfffd; // lone surrogate
    }
    out[n++] = 0xe0 | (c >> 12);
    out[n++] = 0x80 | ((c >> 6) & 0x3f);
    out[n++] = 0x80 | (c & 0x3f);
  }
  return n;
}

/** `s` with every lone surrogate replaced by U+FFFD: what `decode(encode(s))` gives back. */
export function toWellFormed(s: string): string {
  return s.replace(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g, '\ufffd');
}
