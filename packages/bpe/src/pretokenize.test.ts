/**
 * The hand-written pre-tokenizer against a RegExp oracle: GPT-2's pattern with `\s`/`\S` spelled out
 * as Python's whitespace set, which JavaScript's engine then runs with the same backtracking
 * semantics as Python's. On random strings both must give the same pieces.
 */
import { createRng, Rng } from '@causalfusion/rng';
import { PY_WHITESPACE, pretokenize } from './index';

const PY_S = '[' + PY_WHITESPACE.map((c) => '\\u{' + c.toString(16) + '}').join('') + ']';
const PY_NOT_S = '[^' + PY_S.slice(1);
const oracle = new RegExp(`'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^${PY_S.slice(1, -1)}\\p{L}\\p{N}]+|${PY_S}+(?!${PY_NOT_S})|${PY_S}+`, 'gu');
const jsRegex = /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;

// Characters chosen to hit every branch: contraction parts, letters of several scripts, digits and
// other numbers, punctuation, every whitespace of either engine, emoji (astral), combining marks,
// lone surrogates.
const ALPHABET = [
  "'",
  "'",
  's',
  't',
  'r',
  'e',
  'v',
  'm',
  'l',
  'd',
  'S',
  'L',
  'a',
  'Z',
  'é',
  'ß',
  'Ω',
  'ж',
  '日',
  '本',
  'ㅎ',
  'ا',
  '0',
  '7',
  '½',
  'Ⅷ',
  '٣',
  '１',
  '𝟘',
  '.',
  ',',
  '!',
  '?',
  '-',
  '_',
  '(',
  '"',
  '<',
  '|',
  '>',
  '\u2019',
  '\u0301',
  '\u200b',
  ' ',
  ' ',
  ' ',
  ' ',
  '\t',
  '\n',
  '\n',
  '\r',
  '\u000b',
  '\u000c',
  '\u001c',
  '\u001f',
  '\u0085',
  '\u00a0',
  '\u1680',
  '\u2000',
  '\u2028',
  '\u2029',
  '\u202f',
  '\u3000',
  '\ufeff',
  '\u180e',
  '😀',
  '👍🏽',
  '🇯🇵',
  '\ud800',
  '\udfff',
  '\u0000',
];

function randomString(rng: Rng, maxLen: number): string {
  const n = rng.uniformInt(maxLen + 1);
  let s = '';
  for (let i = 0; i < n; i++) s += ALPHABET[rng.uniformInt(ALPHABET.length)];
  return s;
}

describe('pretokenize', () => {
  it('matches the Python-whitespace oracle on 3000 random strings', () => {
    const rng = createRng('pretokenize');
    for (let k = 0; k < 3000; k++) {
      const s = randomString(rng, 40);
      expect([s, pretokenize(s)]).toEqual([s, s.match(oracle) ?? []]);
    }
  });

  it('differs from the plain JavaScript regex exactly where the whitespace sets differ', () => {
    const rng = createRng('js-vs-py');
    let differ = 0;
    for (let k = 0; k < 2000; k++) {
      const s = randomString(rng, 30);
      const same = JSON.stringify(pretokenize(s)) === JSON.stringify(s.match(jsRegex) ?? []);
      if (!/[\u0085\ufeff\u001c-\u001f]/.test(s)) expect([s, same]).toEqual([s, true]);
      else if (!same) differ++;
    }
    expect(differ).toBeGreaterThan(0); // the oracle test above would be vacuous otherwise
  });

  it('pieces concatenate back to the input', () => {
    const rng = createRng('concat');
    for (let k = 0; k < 500; k++) {
      const s = randomString(rng, 60);
      expect(pretokenize(s).join('')).toBe(s);
    }
  });

  it('handles the documented corner cases', () => {
    expect(pretokenize("he's HE'S")).toEqual(['he', "'s", ' HE', "'", 'S']); // contractions are case-sensitive
    expect(pretokenize('a \u0085b')).toEqual(['a', ' ', '\u0085', 'b']); // NEL is whitespace in Python
    expect(pretokenize('a \ufeffb')).toEqual(['a', ' \ufeff', 'b']); // BOM is not
    expect(pretokenize('x  \n  y')).toEqual(['x', '  \n ', ' y']);
    expect(pretokenize('   ')).toEqual(['   ']);
    expect(pretokenize('a' + ' '.repeat(5))).toEqual(['a', '     ']);
    expect(pretokenize('😀😀 🇯🇵')).toEqual(['😀😀', ' 🇯🇵']);
    expect(pretokenize('')).toEqual([]);
  });

  it('Python whitespace set: has NEL and U+001C..U+001F, lacks BOM and U+180E', () => {
    expect(PY_WHITESPACE).toContain(0x85);
    for (const c of [0x1c, 0x1d, 0x1e, 0x1f]) expect(PY_WHITESPACE).toContain(c);
    expect(PY_WHITESPACE).not.toContain(0xfeff);
    expect(PY_WHITESPACE).not.toContain(0x180e);
    // Everything else agrees with JavaScript's \s.
    const py = new Set(PY_WHITESPACE);
    const mismatches: number[] = [];
    for (let cp = 0; cp < 0x10000; cp++) {
      if (cp === 0x85 || cp === 0xfeff || (cp >= 0x1c && cp <= 0x1f)) continue;
      if (py.has(cp) !== /\s/.test(String.fromCharCode(cp))) mismatches.push(cp);
    }
    expect(mismatches).toEqual([]);
  });
});
