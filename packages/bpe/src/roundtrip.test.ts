/**
 * BPE round trip (issue #19): decode(encode(s)) == s for GPT-2's tokenizer on random unicode strings:
 * emoji (ZWJ sequences, skin tones, flags, keycaps), combining marks, CJK (astral too), RTL scripts,
 * control characters, whitespace runs (Python's and JavaScript's \s), special-token text, and any code
 * point at all.
 *
 * Lone surrogates (a high surrogate not followed by a low one, or a low one alone) cannot be written in
 * UTF-8; encode replaces each by U+FFFD, as TextEncoder and Python's errors="replace" do. So the round
 * trip gives s exactly for every well-formed string, and toWellFormed(s) (lone surrogates -> U+FFFD, the
 * rest unchanged) for the others; about 1 string in 12 here has one.
 *
 * `pnpm test` runs 10,000 strings; `pnpm fuzz` runs 100,000 (CF_FUZZ_CASES; test-utils/fuzz.ts).
 */
import * as path from 'path';
import { describeFailures, fuzz, fuzzTimeout, FuzzRng } from '../../../test-utils/fuzz';
import { BPETokenizer, loadGPT2, toWellFormed } from './index';

const REF = path.resolve(__dirname, '../../../../shared/reference/gpt2');

const cp = (rng: FuzzRng, from: number, to: number) => String.fromCodePoint(from + rng.int(to - from + 1));
const WHITESPACE = [
  ' ',
  '  ',
  '\t',
  '\n',
  '\r\n',
  '\r',
  '\u000b',
  '\u000c',
  '\u0085',
  '\u00a0',
  '\u1680',
  '\u2000',
  '\u200a',
  '\u2028',
  '\u2029',
  '\u202f',
  '\u205f',
  '\u3000',
  '\u200b',
  '\ufeff',
  '\u001c',
  '\u001d',
  '\u001e',
  '\u001f',
];
const WORDS = [
  'the',
  'cat',
  "it's",
  "we'll",
  "I'M",
  'naïve',
  'café',
  'Ünïcödé',
  '42',
  '3.14',
  '1,000,000',
  '--',
  '...',
  '(x)',
  '<|endoftext|>',
  '<|bos|>',
  'https://example.com/a?b=c',
  'ǅ',
  'ﬁ',
  'Ⅻ',
  '½',
  '𝔘𝔫𝔦',
];
const EMOJI = ['😀', '👍🏽', '👨‍👩‍👧‍👦', '🏳️‍🌈', '🇯🇵', '🇺🇳', '1️⃣', '#️⃣', '❤️', '🧑🏿‍🚀', '🫠', '☺︎', '👁️‍🗨️'];

/** One piece of text of a random kind. */
function piece(rng: FuzzRng): string {
  switch (rng.int(14)) {
    case 0:
      return rng.pick(WORDS);
    case 1: {
      let s = '';
      for (let k = 1 + rng.int(6); k > 0; k--) s += rng.pick(WHITESPACE);
      return s;
    }
    case 2: // control characters, C0 and C1
      return rng.chance(0.5) ? cp(rng, 0, 0x1f) : cp(rng, 0x7f, 0x9f);
    case 3: {
      // a base letter with combining marks (diacritics, enclosing marks, Hebrew points)
      let s = rng.pick(['a', 'e', 'o', 'Z', 'ı', 'α', 'я', 'ب', ' ', '1']);
      for (let k = 1 + rng.int(5); k > 0; k--) s += rng.pick([cp(rng, 0x300, 0x36f), cp(rng, 0x20d0, 0x20ff), cp(rng, 0x591, 0x5c7), cp(rng, 0x1ab0, 0x1aff)]);
      return s;
    }
    case 4: // CJK: unified ideographs, kana, hangul syllables, hangul jamo, extension B (astral)
      return [cp(rng, 0x4e00, 0x9fff), cp(rng, 0x3040, 0x30ff), cp(rng, 0xac00, 0xd7a3), cp(rng, 0x1100, 0x11ff), cp(rng, 0x20000, 0x2a6df)][rng.int(5)].repeat(
        1 + rng.int(4),
      );
    case 5:
      return rng.pick(EMOJI).repeat(1 + rng.int(2));
    case 6: // single emoji with or without a skin tone / variation selector
      return cp(rng, 0x1f300, 0x1faff) + (rng.chance(0.3) ? cp(rng, 0x1f3fb, 0x1f3ff) : rng.chance(0.3) ? '\ufe0f' : '');
    case 7: // RTL and complex scripts: Arabic, Hebrew, Devanagari, Thai, with the marks they use
      return [cp(rng, 0x600, 0x6ff), cp(rng, 0x5d0, 0x5ea), cp(rng, 0x900, 0x97f), cp(rng, 0xe00, 0xe7f), '\u200f', '\u200d', '\u200c'][rng.int(7)].repeat(
        1 + rng.int(3),
      );
    case 8: // any code point below the surrogates, or above them (astral, private use, unassigned)
      return rng.chance(0.5) ? cp(rng, 0, 0xd7ff) : cp(rng, 0xe000, 0x10ffff);
    case 9: // lone surrogates: a high or low one alone, or a pair in the wrong order
      return rng.pick([cp(rng, 0xd800, 0xdbff), cp(rng, 0xdc00, 0xdfff), cp(rng, 0xdc00, 0xdfff) + cp(rng, 0xd800, 0xdbff)]);
    case 10: // a long run of one character (exercises the long-piece merge path)
      return rng.pick(['a', ' ', '!', '0', 'é', '日', '\n']).repeat(20 + rng.int(200));
    case 11:
      return String.fromCharCode(...Array.from({ length: 1 + rng.int(8) }, () => 0x20 + rng.int(0x5f)));
    default:
      return rng.pick(WORDS) + rng.pick([' ', '', '\n', ', ']);
  }
}

function randomString(rng: FuzzRng): string {
  let s = '';
  for (let k = rng.int(12); k >= 0; k--) s += piece(rng);
  return s;
}

let gpt2: BPETokenizer;
beforeAll(() => {
  gpt2 = loadGPT2(path.join(REF, 'encoder.json'), path.join(REF, 'vocab.bpe'));
});

describe('BPE round trip: decode(encode(s)) == s', () => {
  it(
    'on 100,000 random unicode strings (lone surrogates come back as U+FFFD)',
    async () => {
      let lone = 0;
      const report = await fuzz<string, string>({
        name: 'bpe round trip (GPT-2)',
        seed: 'roundtrip-1',
        cases: 100_000,
        generate(rng) {
          const s = randomString(rng);
          if (toWellFormed(s) !== s) lone++;
          return { input: s, what: JSON.stringify(s).slice(0, 200) };
        },
        parse: (s) => gpt2.decode(gpt2.encode(s)),
        check: (s, back) => (back === toWellFormed(s) ? undefined : `decode(encode(s)) = ${JSON.stringify(back).slice(0, 200)}`),
      });
      expect(describeFailures(report)).toBe('');
      // both kinds were tried
      expect(lone).toBeGreaterThan(report.cases / 30);
      expect(report.cases - lone).toBeGreaterThan(report.cases / 2);
    },
    fuzzTimeout(180_000),
  );

  it('the lone-surrogate rule: each one becomes U+FFFD (EF BF BD), well-formed text is unchanged', () => {
    expect(gpt2.decode(gpt2.encode('a\ud800b'))).toBe('a\ufffdb');
    expect(gpt2.decode(gpt2.encode('\udc00\ud800'))).toBe('\ufffd\ufffd');
    expect(gpt2.decode(gpt2.encode('x\ud83d'))).toBe('x\ufffd'); // cut at the end of the text
    expect(gpt2.encode('\ud800')).toEqual(gpt2.encode('\ufffd'));
    expect(gpt2.decode(gpt2.encode('😀\ud83d\ude00'))).toBe('😀😀'); // a proper pair is one character
  });

  it('regression: a leading U+FEFF survives decode (TextDecoder dropped it as a byte order mark)', () => {
    expect(gpt2.decode(gpt2.encode('\ufeffhello'))).toBe('\ufeffhello');
    expect(gpt2.decode(gpt2.encode('\ufeff\ufeff'))).toBe('\ufeff\ufeff');
  });
});
