/**
 * Training: the incremental trainer against a naive one that recounts every pair after each merge,
 * determinism, options, special tokens, and files.
 */
import { createRng, Rng } from '@causalfusion/rng';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { BYTE_TO_CHAR, pretokenize, trainBPE, trainBPEFromFiles } from './index';

/** Most frequent pair first, ties to the smaller (left id, right id); recounted from scratch each time. */
function naiveMerges(texts: string[], vocabSize: number, minFrequency: number, nSpecial: number): [string, string][] {
  const counts = new Map<string, number>();
  for (const t of texts) for (const w of pretokenize(t)) counts.set(w, (counts.get(w) ?? 0) + 1);
  const tokens: string[] = [];
  const idOf = new Map<string, number>();
  for (let b = 0; b < 256; b++) {
    tokens[nSpecial + b] = BYTE_TO_CHAR[b];
    idOf.set(BYTE_TO_CHAR[b], nSpecial + b);
  }
  let words = [...counts].map(([w, c]) => ({ syms: [...Buffer.from(w, 'utf8')].map((b) => nSpecial + b), c }));
  const merges: [string, string][] = [];
  let nextId = nSpecial + 256;
  while (nextId < vocabSize) {
    const pairs = new Map<string, number>();
    for (const { syms, c } of words)
      for (let k = 0; k + 1 < syms.length; k++) pairs.set(`${syms[k]},${syms[k + 1]}`, (pairs.get(`${syms[k]},${syms[k + 1]}`) ?? 0) + c);
    let best: [number, number] | null = null;
    let bestCount = 0;
    for (const [key, c] of pairs) {
      const [a, b] = key.split(',').map(Number);
      if (c > bestCount || (c === bestCount && best && (a < best[0] || (a === best[0] && b < best[1])))) {
        best = [a, b];
        bestCount = c;
      }
    }
    if (!best || bestCount < minFrequency) break;
    const [a, b] = best;
    const text = tokens[a] + tokens[b];
    let id = idOf.get(text);
    if (id === undefined) {
      id = nextId++;
      idOf.set(text, id);
      tokens[id] = text;
    }
    merges.push([tokens[a], tokens[b]]);
    const merged = id;
    words = words.map(({ syms, c }) => {
      const out: number[] = [];
      for (let k = 0; k < syms.length;) {
        if (k + 1 < syms.length && syms[k] === a && syms[k + 1] === b) {
          out.push(merged);
          k += 2;
        } else out.push(syms[k++]);
      }
      return { syms: out, c };
    });
  }
  return merges;
}

function randomCorpus(rng: Rng, nTexts: number): string[] {
  const syllables = ['ka', 'ro', 'ro', 'ni', ' ', ' ', ' the', 'ing', 'é', '!', '\n', '12', 'aa', 'a', "'s", '日'];
  const texts: string[] = [];
  for (let i = 0; i < nTexts; i++) {
    let t = '';
    const n = 5 + rng.uniformInt(30);
    for (let k = 0; k < n; k++) t += syllables[rng.uniformInt(syllables.length)];
    texts.push(t);
  }
  return texts;
}

describe('trainBPE', () => {
  it('gives exactly the merges of the naive trainer on random corpora', () => {
    const rng = createRng('train');
    for (let k = 0; k < 8; k++) {
      const texts = randomCorpus(rng, 60);
      const tok = trainBPE(texts, { vocabSize: 256 + 40, minFrequency: 2 });
      expect(tok.merges).toEqual(naiveMerges(texts, 256 + 40, 2, 0));
    }
  });

  it('lays out ids as specials, then the 256 bytes, then merges, and hits vocabSize', () => {
    const texts = randomCorpus(createRng('layout'), 200);
    const tok = trainBPE(texts, { vocabSize: 300, specialTokens: ['<|pad|>', '<|bos|>', '<|eos|>'] });
    expect(tok.vocabSize).toBe(300);
    expect(tok.tokenToId('<|pad|>')).toBe(0);
    expect(tok.tokenToId('<|eos|>')).toBe(2);
    expect(tok.vocab.get(BYTE_TO_CHAR[0])).toBe(3);
    expect(tok.vocab.get(BYTE_TO_CHAR[255])).toBe(258);
    expect(tok.vocab.get(tok.merges[0][0] + tok.merges[0][1])).toBe(259);
    expect(tok.merges).toEqual(naiveMerges(texts, 300, 2, 3));
  });

  it('is deterministic and independent of the order of the texts', () => {
    const rng = createRng('order');
    const texts = randomCorpus(rng, 100);
    const a = trainBPE(texts, { vocabSize: 320 });
    const b = trainBPE([...texts].reverse(), { vocabSize: 320 });
    expect(JSON.stringify(b.toTokenizerJson())).toBe(JSON.stringify(a.toTokenizerJson()));
  });

  it('stops at minFrequency', () => {
    const texts = ['abab abab abab xyxy'];
    const tok = trainBPE(texts, { vocabSize: 1000, minFrequency: 3 });
    // Only pairs seen at least 3 times merge: "ab" (6), then "abab"/"Ġabab" pieces; "xy" (2) never.
    expect(tok.vocabSize).toBeLessThan(1000);
    expect(tok.merges.some(([l, r]) => l + r === 'xy')).toBe(false);
    expect(tok.merges[0]).toEqual(['a', 'b']);
    expect(tok.merges).toEqual(naiveMerges(texts, 1000, 3, 0));
  });

  it('keeps special tokens out of the merges and never splits them', () => {
    const texts = ['<|bos|>hello world<|eos|>', '<|bos|>hello there<|eos|>'.repeat(20)];
    const tok = trainBPE(texts, { vocabSize: 400, specialTokens: ['<|bos|>', '<|eos|>'] });
    expect(tok.merges.some(([l, r]) => (l + r).includes('|'))).toBe(false);
    const ids = tok.encode('<|bos|>hello<|eos|>', { allowedSpecial: 'all' });
    expect(ids[0]).toBe(0);
    expect(ids[ids.length - 1]).toBe(1);
    expect(tok.decode(ids)).toBe('<|bos|>hello<|eos|>');
  });

  it('round-trips random unicode through a trained vocabulary', () => {
    const rng = createRng('trained-roundtrip');
    const tok = trainBPE(randomCorpus(rng, 300), { vocabSize: 350 });
    for (let k = 0; k < 300; k++) {
      let s = '';
      for (let i = 0; i < 20; i++) s += String.fromCodePoint(rng.uniformInt(0x11000));
      s = s.replace(/[\ud800-\udfff]/g, '?');
      expect(tok.decode(tok.encode(s))).toBe(s);
    }
  });

  it('trains from files like from strings, and reports progress', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bpe-train-'));
    const texts = randomCorpus(createRng('files'), 50);
    const files = texts.map((t, i) => {
      const p = path.join(dir, `t${i}.txt`);
      fs.writeFileSync(p, t);
      return p;
    });
    const seen: number[] = [];
    const fromFiles = trainBPEFromFiles(files, { vocabSize: 300, onProgress: (done) => seen.push(done) });
    expect(fromFiles.merges).toEqual(trainBPE(texts, { vocabSize: 300 }).merges);
    expect(seen[seen.length - 1]).toBe(fromFiles.vocabSize - 256);
    expect(() => trainBPEFromFiles([path.join(dir, 'missing.txt')], { vocabSize: 300 })).toThrow(/cannot read training file/);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('rejects bad options with a message that says what is allowed', () => {
    expect(() => trainBPE(['x'], { vocabSize: 100 })).toThrow(/vocabSize must be an integer of at least 256/);
    expect(() => trainBPE(['x'], { vocabSize: 258, specialTokens: ['a', 'b', 'c'] })).toThrow(/at least 259/);
    expect(() => trainBPE(['x'], { vocabSize: 300, minFrequency: 0 })).toThrow(/minFrequency must be a positive integer/);
    expect(() => trainBPE(['x'], { vocabSize: 300, specialTokens: ['a', 'a'] })).toThrow(/distinct non-empty/);
  });

  it('trains 200 kB of text to 2k tokens quickly', () => {
    const rng = createRng('speed');
    const words = Array.from({ length: 3000 }, () => {
      let w = '';
      const n = 2 + rng.uniformInt(9);
      for (let i = 0; i < n; i++) w += 'etaoinshrdlucmfwypvbgkjqxz'[Math.min(25, Math.floor(-Math.log(rng.uniform() + 1e-12) * 6))];
      return w;
    });
    let text = '';
    while (text.length < 200_000) text += words[Math.floor(words.length * rng.uniform() ** 2)] + (rng.uniform() < 0.1 ? '.\n' : ' ');
    const t0 = Date.now();
    const tok = trainBPE([text], { vocabSize: 2000 });
    expect(Date.now() - t0).toBeLessThan(10_000);
    expect(tok.vocabSize).toBe(2000);
    expect(tok.decode(tok.encode(text))).toBe(text);
    // A trained vocabulary compresses its own training text far below one token per byte.
    expect(tok.encode(text).length).toBeLessThan(text.length / 2);
  });
});
