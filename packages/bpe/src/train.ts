/**
 * Training a new byte-level BPE vocabulary, deterministically.
 *
 * 1. Pre-tokenize every text with GPT-2's split and count each distinct pre-token ("word").
 * 2. Start from the 256 byte tokens; count every adjacent pair of tokens over all words (weighted by
 *    word frequency).
 * 3. Repeatedly merge the most frequent pair into a new token, updating only the words that contain
 *    it, until the vocabulary is full or the best pair is rarer than `minFrequency`.
 *
 * Ties between equally frequent pairs go to the pair with the smaller (left id, right id), so the same
 * texts and options always give the same vocabulary, whatever the order of words in memory.
 */
import * as fs from 'fs';
import { BYTE_TO_CHAR, utf8Encode } from './bytes';
import { scanPretokens } from './pretokenize';
import { BPETokenizer } from './tokenizer';

export interface TrainOptions {
  /** Final vocabulary size, special tokens and the 256 byte tokens included. */
  vocabSize: number;
  /** A pair seen fewer times than this is never merged (default 2). */
  minFrequency?: number;
  /** Special tokens, given ids 0..k-1 in this order; their text is cut out of the training data. */
  specialTokens?: readonly string[];
  /** Called about every 1000 new tokens and at the end with (new tokens so far, new tokens wanted). */
  onProgress?: (done: number, total: number) => void;
}

/** Pair key: ids stay far below 2^26 in training, so the key is an exact double. */
const KEY = 1 << 26;

/** Trains a tokenizer on strings. */
export function trainBPE(texts: Iterable<string>, options: TrainOptions): BPETokenizer {
  const { vocabSize, minFrequency = 2, specialTokens = [], onProgress } = options;
  const firstMergeId = specialTokens.length + 256;
  if (!Number.isInteger(vocabSize) || vocabSize < firstMergeId) {
    throw new Error(`vocabSize must be an integer of at least ${firstMergeId} (256 byte tokens + ${specialTokens.length} special tokens), got ${vocabSize}`);
  }
  if (vocabSize >= KEY) throw new Error(`vocabSize must be below ${KEY}, got ${vocabSize}`);
  if (!Number.isInteger(minFrequency) || minFrequency < 1) throw new Error(`minFrequency must be a positive integer, got ${minFrequency}`);
  if (new Set(specialTokens).size !== specialTokens.length || specialTokens.some((t) => typeof t !== 'string' || t === '')) {
    throw new Error('specialTokens must be distinct non-empty strings');
  }

  // 1. Word counts. Special tokens are cut out of the text first so they never shape the merges.
  const counts = new Map<string, number>();
  const specialRe = specialTokens.length
    ? new RegExp(
        [...specialTokens]
          .sort((a, b) => b.length - a.length)
          .map((t) => t.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))
          .join('|'),
        'gu',
      )
    : null;
  const countWords = (text: string, start: number, end: number) =>
    scanPretokens(text, start, end, (s, e) => {
      const w = text.slice(s, e);
      counts.set(w, (counts.get(w) ?? 0) + 1);
    });
  for (const text of texts) {
    if (typeof text !== 'string') throw new Error(`trainBPE expects strings, got ${typeof text}`);
    if (!specialRe) {
      countWords(text, 0, text.length);
      continue;
    }
    let from = 0;
    specialRe.lastIndex = 0;
    for (let m = specialRe.exec(text); m !== null; m = specialRe.exec(text)) {
      countWords(text, from, m.index);
      from = m.index + m[0].length;
    }
    countWords(text, from, text.length);
  }

  // Words as arrays of token ids (byte b has id firstByte + b), sorted so the result does not depend
  // on insertion order.
  const firstByte = specialTokens.length;
  const wordTexts = [...counts.keys()].sort();
  const words: Int32Array[] = [];
  const freqs = new Float64Array(wordTexts.length);
  let buf = new Uint8Array(64);
  wordTexts.forEach((w, i) => {
    if (buf.length < 3 * w.length) buf = new Uint8Array(6 * w.length);
    const n = utf8Encode(w, 0, w.length, buf);
    const syms = new Int32Array(n);
    for (let k = 0; k < n; k++) syms[k] = firstByte + buf[k];
    words.push(syms);
    freqs[i] = counts.get(w)!;
  });
  counts.clear();

  // 2. Pair counts, and for each pair the words it appears in (may list a word twice; deduped below).
  const pairCount = new Map<number, number>();
  const pairWords = new Map<number, number[]>();
  const addPairs = (wi: number, sign: number, touched: Set<number> | null) => {
    const syms = words[wi];
    for (let k = 0; k + 1 < syms.length; k++) {
      const key = syms[k] * KEY + syms[k + 1];
      pairCount.set(key, (pairCount.get(key) ?? 0) + sign * freqs[wi]);
      if (sign > 0) {
        let list = pairWords.get(key);
        if (!list) pairWords.set(key, (list = []));
        list.push(wi);
      }
      touched?.add(key);
    }
  };
  for (let wi = 0; wi < words.length; wi++) addPairs(wi, 1, null);

  const heap = new MaxPairHeap();
  for (const [key, c] of pairCount) heap.push(c, key);

  // 3. Merge loop.
  const tokenBytes: string[] = []; // byte-level string of each id (specials left empty)
  for (let b = 0; b < 256; b++) tokenBytes[firstByte + b] = BYTE_TO_CHAR[b];
  const idOf = new Map<string, number>(tokenBytes.map((t, id) => [t, id]).filter(([t]) => t !== undefined) as [string, number][]);
  const merges: [string, string][] = [];
  const wanted = vocabSize - firstMergeId;
  let nextId = firstMergeId;
  const seen = new Int32Array(words.length).fill(-1);
  while (nextId < vocabSize && heap.length > 0) {
    const [c, key] = heap.pop();
    const current = pairCount.get(key) ?? 0;
    if (c !== current) {
      // Stale entry (the count dropped since it was queued); queue the true count if any is left.
      if (current > 0) heap.push(current, key);
      continue;
    }
    if (c < minFrequency) break;
    const a = Math.floor(key / KEY);
    const b = key % KEY;
    // Two different merges can spell the same token ("a"+"bc" and "ab"+"c"): they share one id, as in
    // Hugging Face's trainer, so only the first one uses up vocabulary room.
    const text = tokenBytes[a] + tokenBytes[b];
    let id = idOf.get(text);
    if (id === undefined) {
      id = nextId++;
      idOf.set(text, id);
      tokenBytes[id] = text;
    }
    merges.push([tokenBytes[a], tokenBytes[b]]);
    const stamp = merges.length;

    const touched = new Set<number>();
    for (const wi of pairWords.get(key) ?? []) {
      if (seen[wi] === stamp) continue;
      seen[wi] = stamp;
      const syms = words[wi];
      let has = false;
      for (let k = 0; k + 1 < syms.length; k++) if (syms[k] === a && syms[k + 1] === b) has = true;
      if (!has) continue; // the pair was already merged away in this word
      addPairs(wi, -1, touched);
      const next: number[] = [];
      for (let k = 0; k < syms.length;) {
        if (k + 1 < syms.length && syms[k] === a && syms[k + 1] === b) {
          next.push(id);
          k += 2;
        } else {
          next.push(syms[k++]);
        }
      }
      words[wi] = Int32Array.from(next);
      addPairs(wi, 1, touched);
    }
    pairCount.delete(key);
    pairWords.delete(key);
    for (const t of touched) {
      const n = pairCount.get(t) ?? 0;
      if (n > 0 && t !== key) heap.push(n, t);
      else pairCount.delete(t);
    }
    if (onProgress && (nextId - firstMergeId) % 1000 === 0) onProgress(nextId - firstMergeId, wanted);
  }
  onProgress?.(nextId - firstMergeId, wanted);

  const vocab = new Map<string, number>();
  for (let id = firstByte; id < nextId; id++) vocab.set(tokenBytes[id], id);
  const special = new Map<string, number>(specialTokens.map((t, i) => [t, i]));
  return new BPETokenizer({ vocab, merges, specialTokens: special });
}

/** Trains a tokenizer on UTF-8 text files (each file is one text). */
export function trainBPEFromFiles(paths: readonly string[], options: TrainOptions): BPETokenizer {
  const texts = paths.map((p) => {
    try {
      return fs.readFileSync(p, 'utf8');
    } catch (err) {
      throw new Error(`cannot read training file ${JSON.stringify(p)}: ${(err as Error).message}`);
    }
  });
  return trainBPE(texts, options);
}

/** Max-heap of (count, pair key); equal counts pop the smaller key first (smaller left, then right id). */
class MaxPairHeap {
  private counts: number[] = [];
  private keys: number[] = [];

  get length(): number {
    return this.counts.length;
  }

  private before(i: number, j: number): boolean {
    return this.counts[i] > this.counts[j] || (this.counts[i] === this.counts[j] && this.keys[i] < this.keys[j]);
  }

  private swap(i: number, j: number): void {
    [this.counts[i], this.counts[j]] = [this.counts[j], this.counts[i]];
    [this.keys[i], this.keys[j]] = [this.keys[j], this.keys[i]];
  }

  push(count: number, key: number): void {
    this.counts.push(count);
    this.keys.push(key);
    let i = this.counts.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.before(i, p)) break;
      this.swap(i, p);
      i = p;
    }
  }

  pop(): [number, number] {
    const top: [number, number] = [this.counts[0], this.keys[0]];
    this.swap(0, this.counts.length - 1);
    this.counts.pop();
    this.keys.pop();
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < this.counts.length && this.before(l, m)) m = l;
      if (r < this.counts.length && this.before(r, m)) m = r;
      if (m === i) break;
      this.swap(i, m);
      i = m;
    }
    return top;
  }
}
