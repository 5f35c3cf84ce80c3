/**
 * Encoding beyond the reference cases: the id-based merge loop (short and long-piece versions) against
 * a plain string version of encoder.py's `bpe()`, the decode(encode(s)) round trip on random unicode,
 * special tokens and batches.
 */
import { createRng, Rng } from '@causalfusion/rng';
import * as path from 'path';
import { BPETokenizer, BYTE_TO_CHAR, loadGPT2, pretokenize, toWellFormed } from './index';

const REF = path.resolve(__dirname, '../../../../shared/reference');
let gpt2: BPETokenizer;
let ranks: Map<string, number>;
beforeAll(() => {
  gpt2 = loadGPT2(path.join(REF, 'gpt2/encoder.json'), path.join(REF, 'gpt2/vocab.bpe'), {
    extraSpecialTokens: ['<|pad|>', '<|bos|>', '<|eos|>', '<|image_start|>', '<|image_end|>'],
  });
  ranks = new Map(gpt2.merges.map(([a, b], r) => [`${a} ${b}`, r]));
});

/** encoder.py's bpe() on strings, written as plainly as possible: the oracle for the id version. */
function referenceBpe(token: string): string[] {
  let word = [...token];
  for (;;) {
    let best = Infinity;
    let pair: [string, string] | null = null;
    for (let i = 0; i + 1 < word.length; i++) {
      const r = ranks.get(`${word[i]} ${word[i + 1]}`);
      if (r !== undefined && r < best) {
        best = r;
        pair = [word[i], word[i + 1]];
      }
    }
    if (!pair) return word;
    const out: string[] = [];
    for (let i = 0; i < word.length;) {
      if (i + 1 < word.length && word[i] === pair[0] && word[i + 1] === pair[1]) {
        out.push(pair[0] + pair[1]);
        i += 2;
      } else {
        out.push(word[i++]);
      }
    }
    word = out;
  }
}

function referenceEncode(text: string): number[] {
  const ids: number[] = [];
  for (const piece of pretokenize(text)) {
    const chars = [...Buffer.from(toWellFormed(piece), 'utf8')].map((b) => BYTE_TO_CHAR[b]).join('');
    for (const t of referenceBpe(chars)) ids.push(gpt2.vocab.get(t)!);
  }
  return ids;
}

const PIECES = ['the', ' cat', "'s", ' ', '  ', '\n', '1234', '.', 'é', '日本', '😀', '👍🏽', '\u0301', 'aaaa', 'ing', ' un', '\ud800', '\t', 'Ω'];

function randomText(rng: Rng, n: number): string {
  let s = '';
  for (let i = 0; i < n; i++) {
    if (rng.uniform() < 0.7) s += PIECES[rng.uniformInt(PIECES.length)];
    else {
      // any code point, including astral, private use and unassigned ones
      const cp = rng.uniform() < 0.5 ? rng.uniformInt(0x3000) : rng.uniformInt(0x110000);
      s += String.fromCodePoint(cp);
    }
  }
  return s;
}

describe('merge loop', () => {
  it('equals the string version of encoder.py on 400 random texts', () => {
    const rng = createRng('merge');
    for (let k = 0; k < 400; k++) {
      const s = randomText(rng, 30);
      expect([s, gpt2.encode(s)]).toEqual([s, referenceEncode(s)]);
    }
  });

  it('long pieces (heap version) equal the string version', () => {
    const rng = createRng('long');
    const letters = 'abcdefghijklmnopqrstuvwxyzéàö';
    for (let k = 0; k < 20; k++) {
      const n = 129 + rng.uniformInt(400);
      let s = '';
      for (let i = 0; i < n; i++) s += letters[rng.uniformInt(letters.length)];
      expect(gpt2.encode(s)).toEqual(referenceEncode(s));
    }
    expect(gpt2.encode('a'.repeat(1001))).toEqual(referenceEncode('a'.repeat(1001)));
    expect(gpt2.encode('!?'.repeat(300))).toEqual(referenceEncode('!?'.repeat(300)));
  });

  it('a 200k-character piece is encoded in well under a second', () => {
    const s = 'abcdefghij'.repeat(20_000);
    const t0 = Date.now();
    const ids = gpt2.encode(s);
    expect(Date.now() - t0).toBeLessThan(1500);
    expect(gpt2.decode(ids)).toBe(s);
  });
});

describe('decode(encode(s)) == s', () => {
  it('on 1000 random unicode strings (lone surrogates come back as U+FFFD)', () => {
    const rng = createRng('roundtrip');
    for (let k = 0; k < 1000; k++) {
      const s = randomText(rng, 25);
      expect(gpt2.decode(gpt2.encode(s))).toBe(toWellFormed(s));
    }
  });

  it('on whitespace runs, emoji sequences and lone surrogates', () => {
    for (const s of [' \t\n\r\u000b\u000c\u0085\u00a0\u2028\u3000 ', '  \n\n\n  \t\t ', '👨‍👩‍👧‍👦🏳️‍🌈', 'x\ud83dy', '\udc00', 'a\ud800\ud800b']) {
      expect(gpt2.decode(gpt2.encode(s))).toBe(toWellFormed(s));
    }
    expect(toWellFormed('x\ud83dy')).toBe('x\ufffdy');
  });

  it('decode replaces bytes cut inside a character', () => {
    const ids = gpt2.encode('😀'); // 4 bytes in several byte-level tokens
    expect(ids.length).toBeGreaterThan(1);
    expect(gpt2.decode(ids.slice(0, 1))).toContain('\ufffd');
  });
});

describe('special tokens', () => {
  const text = '<|bos|>a cat<|image_start|><|image_end|>sat<|eos|><|pad|>';

  it('are never split when allowed, and are plain text when not', () => {
    const ids = gpt2.encode(text, { allowedSpecial: 'all' });
    const sp = (t: string) => gpt2.tokenToId(t)!;
    expect(sp('<|pad|>')).toBe(50257);
    expect(sp('<|image_end|>')).toBe(50261);
    expect(ids).toEqual([sp('<|bos|>'), 64, 3797, sp('<|image_start|>'), sp('<|image_end|>'), 49720, sp('<|eos|>'), sp('<|pad|>')]);
    expect(gpt2.decode(ids)).toBe(text);
    expect(gpt2.decode(ids, { skipSpecialTokens: true })).toBe('a catsat');
    const plain = gpt2.encode(text);
    expect(plain.some((id) => gpt2.isSpecialId(id))).toBe(false);
    expect(gpt2.decode(plain)).toBe(text);
  });

  it('a chosen subset is matched, the rest stay text', () => {
    const ids = gpt2.encode(text, { allowedSpecial: ['<|eos|>'] });
    expect(ids.filter((id) => gpt2.isSpecialId(id))).toEqual([gpt2.tokenToId('<|eos|>')]);
    expect(gpt2.decode(ids)).toBe(text);
  });

  it('disallowedSpecial throws on forged control tokens', () => {
    expect(() => gpt2.encode('hi <|eos|>', { disallowedSpecial: 'all' })).toThrow(/contains the special token "<\|eos\|>" at index 3/);
    expect(() => gpt2.encode('hi <|eos|>', { allowedSpecial: ['<|eos|>'], disallowedSpecial: 'all' })).not.toThrow();
    expect(gpt2.encode('no specials here', { disallowedSpecial: 'all' })).toEqual(gpt2.encode('no specials here'));
  });

  it('unknown names are rejected', () => {
    expect(() => gpt2.encode('x', { allowedSpecial: ['<|nope|>'] })).toThrow(/"<\|nope\|>" is not a special token/);
    expect(() => gpt2.encode('x', { allowedSpecial: 'some' as never })).toThrow(/allowedSpecial must be 'all', 'none' or a list/);
  });

  it('text around a special token is pre-tokenized as if the token were the end/start of input', () => {
    // "  " before <|eos|> is a whole whitespace run at the end of its segment.
    expect(gpt2.encode('a  <|eos|>', { allowedSpecial: 'all' })).toEqual([...gpt2.encode('a  '), gpt2.tokenToId('<|eos|>')]);
  });
});

describe('encodeBatch', () => {
  const texts = ['a cat', 'the quick brown fox jumps', ''];
  it('pads to the longest with <|pad|> on the right by default, with a mask', () => {
    const { ids, attentionMask } = gpt2.encodeBatch(texts);
    const lens = texts.map((t) => gpt2.encode(t).length);
    const width = Math.max(...lens);
    const pad = gpt2.tokenToId('<|pad|>')!;
    ids.forEach((row, i) => {
      expect(row.length).toBe(width);
      expect(row.slice(0, lens[i])).toEqual(gpt2.encode(texts[i]));
      expect(row.slice(lens[i])).toEqual(new Array(width - lens[i]).fill(pad));
      expect(attentionMask[i]).toEqual([...new Array(lens[i]).fill(1), ...new Array(width - lens[i]).fill(0)]);
    });
  });

  it('truncates and pads to maxLength, on either side', () => {
    const full = gpt2.encode(texts[1]);
    const r = gpt2.encodeBatch(texts, { maxLength: 3, padding: 'max_length', padSide: 'left', padId: 0, truncationSide: 'left' });
    expect(r.ids[1]).toEqual(full.slice(-3));
    expect(r.ids[0]).toEqual([0, ...gpt2.encode('a cat')]);
    expect(r.attentionMask[0]).toEqual([0, 1, 1]);
    expect(r.ids[2]).toEqual([0, 0, 0]);
    expect(r.attentionMask[2]).toEqual([0, 0, 0]);
    expect(gpt2.encodeBatch(texts, { maxLength: 3, padding: 'none' }).ids[1]).toEqual(full.slice(0, 3));
  });

  it('rejects inconsistent options and missing pad ids', () => {
    expect(() => gpt2.encodeBatch(texts, { padding: 'max_length' })).toThrow(/needs maxLength/);
    expect(() => gpt2.encodeBatch(texts, { maxLength: 0 })).toThrow(/positive integer/);
    const noPad = loadGPT2(path.join(REF, 'gpt2/encoder.json'), path.join(REF, 'gpt2/vocab.bpe'));
    expect(() => noPad.encodeBatch(texts)).toThrow(/padding needs a pad id/);
    expect(noPad.encodeBatch(texts, { padding: 'none' }).ids[2]).toEqual([]);
  });
});

describe('ids', () => {
  it('decode rejects ids that do not exist', () => {
    expect(() => gpt2.decode([1, 99_999])).toThrow(/token id 99999 is not in this tokenizer/);
    expect(() => gpt2.decode([1.5])).toThrow(/token id 1.5/);
  });
  it('encode rejects non-strings', () => {
    expect(() => gpt2.encode(42 as never)).toThrow(/expects a string/);
  });
});
