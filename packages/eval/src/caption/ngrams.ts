/**
 * The input side shared by CIDEr-D and BLEU: pairing references with candidates by image id, and
 * counting n-grams with integer ids so that scoring 5000 images is a matter of Map lookups.
 */

/** An image id as COCO writes it: a number, or a string (JSON object keys). */
export type ImageId = string | number;

/** Per-image values keyed by image id: a Map (keys kept as given) or a plain object. */
export type ById<T> = ReadonlyMap<ImageId, T> | Readonly<Record<string, T>>;

// Python's str.isspace() set, which str.split() splits on. JavaScript's \s differs: it includes
// U+FEFF and lacks U+001C..U+001F and U+0085.
const PY_WHITESPACE = /[\t\n\v\f\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+/;

/** The words of an already-tokenized caption, exactly as Python's `str.split()` gives them. */
export function splitWords(caption: string): string[] {
  return caption.split(PY_WHITESPACE).filter((w) => w.length > 0);
}

/** References and the one candidate of each image, in the order of the references' ids. */
export interface PairedCaptions {
  ids: ImageId[];
  refs: string[][];
  hyps: string[];
}

function entriesOf<T>(byId: ById<T>, what: string): [ImageId, T][] {
  if (byId instanceof Map) return [...byId.entries()];
  if (byId === null || typeof byId !== 'object' || Array.isArray(byId)) {
    throw new TypeError(`${what} must be a Map or an object keyed by image id`);
  }
  return Object.entries(byId as Record<string, T>);
}

/**
 * Check that `gts` and `res` hold the same image ids, each with a non-empty list of reference strings
 * and exactly one candidate string (pycocoevalcap asserts the same), and line them up.
 */
export function pairCaptions(gts: ById<readonly string[]>, res: ById<readonly string[]>): PairedCaptions {
  const gtsEntries = entriesOf(gts, 'references (gts)');
  const resEntries = entriesOf(res, 'candidates (res)');
  if (gtsEntries.length === 0) throw new RangeError('no images to score: the references (gts) are empty');

  // Ids are matched by their string form, as they would be after a trip through JSON.
  const resByKey = new Map<string, readonly string[]>();
  for (const [id, hyp] of resEntries) {
    const key = String(id);
    if (resByKey.has(key)) throw new RangeError(`image_id ${key} appears twice in the candidates`);
    resByKey.set(key, hyp);
  }

  const ids: ImageId[] = [];
  const refs: string[][] = [];
  const hyps: string[] = [];
  const seen = new Set<string>();
  for (const [id, refList] of gtsEntries) {
    const key = String(id);
    if (seen.has(key)) throw new RangeError(`image_id ${key} appears twice in the references`);
    seen.add(key);
    if (!Array.isArray(refList) || refList.length === 0 || refList.some((r) => typeof r !== 'string')) {
      throw new TypeError(`references for image_id ${key} must be a non-empty list of caption strings`);
    }
    const hyp = resByKey.get(key);
    if (hyp === undefined) throw new RangeError(`image_id ${key} has references but no candidate`);
    if (!Array.isArray(hyp) || hyp.length !== 1 || typeof hyp[0] !== 'string') {
      throw new TypeError(`candidate for image_id ${key} must be a list of exactly one caption string`);
    }
    ids.push(id);
    refs.push([...refList]);
    hyps.push(hyp[0]);
  }
  for (const key of resByKey.keys()) {
    if (!seen.has(key)) throw new RangeError(`candidate for image_id ${key} has no references`);
  }
  return { ids, refs, hyps };
}

/**
 * Every caption of a scoring run, counted against one shared n-gram table, in flat typed arrays.
 * Caption `c` holds the distinct n-grams `ngrams[start[c] .. start[c+1])` with their counts in
 * `counts`, in pycocoevalcap's order (all 1-grams by first appearance, then 2-grams, ...).
 * Captions 0..images-1 are the candidates; image `i`'s references are captions
 * `refStart[i] .. refStart[i+1])`.
 */
export interface CountedCorpus {
  n: number;
  images: number;
  /** `order[id]` is the length (1..n) of n-gram `id`. */
  order: Uint8Array;
  ngrams: Int32Array;
  counts: Int32Array;
  start: Int32Array;
  /** Number of words of each caption. */
  words: Int32Array;
  refStart: Int32Array;
}

/**
 * Count the 1..n-grams of every caption (words = `str.split()`). An n-gram's id is interned from its
 * (n-1)-gram prefix id and its last word id, so no n-gram is ever built as a string.
 */
export function countCorpus(paired: PairedCaptions, n: number): CountedCorpus {
  const images = paired.hyps.length;
  const captions: string[] = [...paired.hyps];
  const refStart = new Int32Array(images + 1);
  for (let i = 0; i < images; i++) {
    refStart[i] = captions.length;
    captions.push(...paired.refs[i]);
  }
  refStart[images] = captions.length;

  const wordIds = new Map<string, number>();
  let totalWords = 0;
  const captionWords = captions.map((caption) => {
    const words = splitWords(caption);
    const ids = new Int32Array(words.length);
    for (let i = 0; i < words.length; i++) {
      let id = wordIds.get(words[i]);
      if (id === undefined) {
        id = wordIds.size;
        wordIds.set(words[i], id);
      }
      ids[i] = id;
    }
    totalWords += words.length;
    return ids;
  });

  // 1-gram ids are the word ids; longer n-grams get ids from `vocab` on, so there are at most
  // vocab + (n - 1) * totalWords ids.
  const vocab = Math.max(1, wordIds.size);
  const maxIds = vocab + (n - 1) * totalWords;
  const longer = new PairTable((n - 1) * totalWords);
  const order = new Uint8Array(maxIds).fill(1, 0, vocab);
  let numIds = vocab;

  const ngrams = new Int32Array(n * totalWords);
  const counts = new Int32Array(n * totalWords);
  const start = new Int32Array(captions.length + 1);
  const words = new Int32Array(captions.length);
  // Where n-gram id sits in the current caption's slice: valid when seenIn[id] is that caption.
  const seenIn = new Int32Array(maxIds).fill(-1);
  const slot = new Int32Array(maxIds);
  let filled = 0;
  const add = (id: number, caption: number): void => {
    if (seenIn[id] === caption) {
      counts[slot[id]]++;
    } else {
      seenIn[id] = caption;
      slot[id] = filled;
      ngrams[filled] = id;
      counts[filled++] = 1;
    }
  };

  captionWords.forEach((w, c) => {
    start[c] = filled;
    words[c] = w.length;
    // prev[i] is the id of the (k-1)-gram starting at word i; extended in place to the k-gram.
    const prev = w.slice();
    for (let i = 0; i < w.length; i++) add(w[i], c);
    for (let k = 2; k <= n; k++) {
      for (let i = 0; i + k <= w.length; i++) {
        let id = longer.getOrAdd(prev[i], w[i + k - 1], numIds);
        if (id === numIds) order[numIds++] = k;
        prev[i] = id;
        add(id, c);
      }
    }
  });
  start[captions.length] = filled;
  return { n, images, order: order.subarray(0, numIds), ngrams, counts, start, words, refStart };
}

// A module-level alias: under jest's vm sandbox every lookup of the global `Math` in a hot loop is slow.
const imul = Math.imul;

/**
 * An open-addressing hash table from a pair of non-negative int32 (an n-gram's prefix id and last word
 * id) to an id. A JavaScript Map keyed by prefix * vocab + word does the same several times slower at
 * COCO sizes (hundreds of thousands of n-grams).
 */
class PairTable {
  private readonly mask: number;
  private readonly firsts: Int32Array;
  private readonly seconds: Int32Array;
  private readonly values: Int32Array;

  /** `capacity`: the most pairs that will ever be added. */
  constructor(capacity: number) {
    let size = 16;
    while (size < 2 * capacity) size *= 2; // load factor <= 1/2 keeps probe runs short
    this.mask = size - 1;
    this.firsts = new Int32Array(size).fill(-1);
    this.seconds = new Int32Array(size);
    this.values = new Int32Array(size);
  }

  /** The id stored for (a, b), or `fresh` after storing it there when the pair is new. */
  getOrAdd(a: number, b: number, fresh: number): number {
    let h = (imul(a, 0x9e3779b1) ^ imul(b, 0x85ebca6b)) >>> 0;
    h = (h ^ (h >>> 15)) & this.mask;
    while (this.firsts[h] !== -1) {
      if (this.firsts[h] === a && this.seconds[h] === b) return this.values[h];
      h = (h + 1) & this.mask;
    }
    this.firsts[h] = a;
    this.seconds[h] = b;
    this.values[h] = fresh;
    return fresh;
  }
}

/** Check an n-gram order option (pycocoevalcap uses 4). */
export function checkOrder(n: number): void {
  if (!Number.isInteger(n) || n < 1 || n > 255) throw new RangeError(`n must be an integer from 1 to 255, got ${n}`);
}
