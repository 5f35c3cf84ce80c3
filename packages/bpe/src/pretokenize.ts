/**
 * GPT-2's pre-tokenizer, hand-written so that it follows Python's `regex` module instead of JavaScript's.
 *
 * encoder.py splits text with
 *
 *     's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 *
 * The same literal with JavaScript's `/gu` flags gives different pieces on some inputs, because `\s`
 * is not the same set in the two engines: JavaScript's `\s` contains U+FEFF (BOM) but not U+0085 (NEL)
 * nor U+001C..U+001F, and Python's is the reverse. (`bpe_gpt2.json` holds three strings where node's
 * regex splits differently from encoder.py.) So instead of a RegExp this module scans the text once,
 * with `\s` taken from Python (`PY_WHITESPACE` below); `\p{L}` and `\p{N}` come from the Unicode tables
 * of the running engine (node 20 ships Unicode 15.1+ through ICU), which is what both engines mean.
 *
 * A hand scanner is also faster than the RegExp: one table lookup per character, no backtracking.
 */

/** Python's `\s` for str patterns: every code point with `str.isspace()` true. JS `\s` differs. */
export const PY_WHITESPACE: readonly number[] = [
  0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x1c, 0x1d, 0x1e, 0x1f, 0x20, 0x85, 0xa0, 0x1680, 0x2000, 0x2001, 0x2002, 0x2003, 0x2004, 0x2005, 0x2006, 0x2007, 0x2008,
  0x2009, 0x200a, 0x2028, 0x2029, 0x202f, 0x205f, 0x3000,
];

/** The four classes the GPT-2 pattern distinguishes. */
export enum CharClass {
  Other = 0,
  Letter = 1,
  Number = 2,
  Space = 3,
}

const LETTER = /\p{L}/u;
const NUMBER = /\p{N}/u;

function classify(cp: number): CharClass {
  const ch = String.fromCodePoint(cp);
  if (LETTER.test(ch)) return CharClass.Letter;
  if (NUMBER.test(ch)) return CharClass.Number;
  return CharClass.Other;
}

/** Class of every BMP code point, built once on first use (~10 ms); astral ones are cached lazily. */
let bmpClasses: Uint8Array | undefined;
const astralClasses = new Map<number, CharClass>();

function bmpTable(): Uint8Array {
  if (bmpClasses) return bmpClasses;
  const table = new Uint8Array(0x10000);
  for (let cp = 0; cp < 0x10000; cp++) {
    // Surrogate code units on their own are lone surrogates: neither letter, number nor space.
    table[cp] = cp >= 0xd800 && cp <= 0xdfff ? CharClass.Other : classify(cp);
  }
  for (const cp of PY_WHITESPACE) table[cp] = CharClass.Space;
  bmpClasses = table;
  return table;
}

function astralClass(cp: number): CharClass {
  let c = astralClasses.get(cp);
  if (c === undefined) {
    c = classify(cp);
    astralClasses.set(cp, c);
  }
  return c;
}

/** The class of the code point starting at `text[i]` (a lone surrogate is Other). */
export function charClassAt(text: string, i: number): CharClass {
  const table = bmpTable();
  const c = text.charCodeAt(i);
  if (c >= 0xd800 && c <= 0xdbff && i + 1 < text.length) {
    const d = text.charCodeAt(i + 1);
    if (d >= 0xdc00 && d <= 0xdfff) return astralClass(0x10000 + ((c - 0xd800) << 10) + (d - 0xdc00));
  }
  return table[c] as CharClass;
}

/** Number of UTF-16 units of the code point at `text[i]` (2 for a surrogate pair, else 1). */
function widthAt(text: string, i: number, end: number): number {
  const c = text.charCodeAt(i);
  if (c >= 0xd800 && c <= 0xdbff && i + 1 < end) {
    const d = text.charCodeAt(i + 1);
    if (d >= 0xdc00 && d <= 0xdfff) return 2;
  }
  return 1;
}

/** End of the run of `cls` characters that starts at `i`. */
function runEnd(text: string, i: number, end: number, cls: CharClass): number {
  const table = bmpTable();
  while (i < end) {
    const c = text.charCodeAt(i);
    if (c < 0xd800 || c > 0xdbff) {
      if (table[c] !== cls) return i;
      i++;
    } else {
      const w = widthAt(text, i, end);
      if ((w === 2 ? charClassAt(text, i) : CharClass.Other) !== cls) return i;
      i += w;
    }
  }
  return i;
}

/**
 * Calls `emit(start, stop)` for each GPT-2 pre-token of `text[start, end)`, in order. The slice is
 * treated as a whole string: `end` is the end of input for the `(?!\S)` look-ahead.
 */
export function scanPretokens(text: string, start: number, end: number, emit: (s: number, e: number) => void): void {
  const table = bmpTable();
  let i = start;
  while (i < end) {
    const c = text.charCodeAt(i);

    // 's 't 're 've 'm 'll 'd, lower case only (the pattern has no IGNORECASE flag).
    if (c === 0x27 && i + 1 < end) {
      const n1 = text.charCodeAt(i + 1);
      if (n1 === 0x73 || n1 === 0x74 || n1 === 0x6d || n1 === 0x64) {
        emit(i, i + 2);
        i += 2;
        continue;
      }
      if (i + 2 < end) {
        const n2 = text.charCodeAt(i + 2);
        if ((n2 === 0x65 && (n1 === 0x72 || n1 === 0x76)) || (n1 === 0x6c && n2 === 0x6c)) {
          emit(i, i + 3);
          i += 3;
          continue;
        }
      }
    }

    // " ?X+" for X = letters, numbers, or neither-letter-number-nor-space: an optional single
    // leading space (U+0020 only) glued to a run of one class.
    let body = i;
    if (c === 0x20 && i + 1 < end) body = i + 1;
    const cls = body === i ? (c < 0xd800 || c > 0xdbff ? (table[c] as CharClass) : charClassAt(text, i)) : charClassAt(text, body);
    if (cls !== CharClass.Space) {
      const stop = runEnd(text, body, end, cls);
      emit(i, stop);
      i = stop;
      continue;
    }

    // Whitespace: "\s+(?!\S)" takes the run but leaves its last character when a non-space follows
    // (so " word" keeps its space); a run of one before a non-space falls through to "\s+".
    const stop = runEnd(text, i, end, CharClass.Space);
    const cut = stop < end && stop - i >= 2 ? stop - 1 : stop;
    emit(i, cut);
    i = cut;
  }
}

/** GPT-2 pre-tokens of `text`, as strings (convenience wrapper over {@link scanPretokens}). */
export function pretokenize(text: string): string[] {
  const out: string[] = [];
  scanPretokens(text, 0, text.length, (s, e) => out.push(text.slice(s, e)));
  return out;
}
