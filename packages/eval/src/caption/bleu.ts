/**
 * BLEU-1..4 as pycocoevalcap's `Bleu(4)` computes it (BleuScorer, option 'closest').
 *
 * - Corpus BLEU-n comes from clipped n-gram counts summed over all images, not from a mean of
 *   per-image BLEU.
 * - Smoothing: each order's precision is (correct + 1e-15) / (guessed + 1e-9), so an order with no
 *   candidate n-grams contributes 1e-6 rather than failing.
 * - Brevity penalty: the reference length closest to the candidate's (ties go to the shorter one);
 *   the corpus penalty uses the sum of those lengths.
 */
import { ById, CountedCorpus, ImageId, checkOrder, countCorpus, pairCaptions } from './ngrams';

const TINY = 1e-15;
const SMALL = 1e-9;

export interface BleuResult {
  /** Corpus BLEU-1..n. */
  scores: number[];
  /** BLEU-1..n of each image, keyed by the ids of `gts`, in their order. */
  perImage: Map<ImageId, number[]>;
}

/** Cumulative BLEU-1..n from clipped-match and guess counts, with the brevity penalty. */
function bleuFromCounts(correct: number[], guess: number[], testLen: number, refLen: number): number[] {
  const out: number[] = [];
  let product = 1;
  for (let k = 0; k < correct.length; k++) {
    product *= (correct[k] + TINY) / (guess[k] + SMALL);
    out.push(product ** (1 / (k + 1)));
  }
  const ratio = (testLen + TINY) / (refLen + SMALL);
  if (ratio < 1) {
    const brevity = Math.exp(1 - 1 / ratio);
    for (let k = 0; k < out.length; k++) out[k] *= brevity;
  }
  return out;
}

/** Corpus and per-image BLEU-1..n of a counted corpus (per-image lists in its image order). */
export function bleuScores(corpus: CountedCorpus): { scores: number[]; perImage: number[][] } {
  const { n, images, order, ngrams, counts, start, words, refStart } = corpus;
  // Largest count of n-gram id in any single reference of the current image: valid when maxOf[id] is that image.
  const maxRef = new Int32Array(order.length);
  const maxOf = new Int32Array(order.length).fill(-1);
  const totalCorrect = new Array<number>(n).fill(0);
  const totalGuess = new Array<number>(n).fill(0);
  let totalTest = 0;
  let totalRef = 0;
  const perImage: number[][] = [];
  for (let hyp = 0; hyp < images; hyp++) {
    const testLen = words[hyp];
    let refLen = -1;
    for (let ref = refStart[hyp]; ref < refStart[hyp + 1]; ref++) {
      for (let j = start[ref]; j < start[ref + 1]; j++) {
        const id = ngrams[j];
        if (maxOf[id] !== hyp) {
          maxOf[id] = hyp;
          maxRef[id] = counts[j];
        } else if (counts[j] > maxRef[id]) {
          maxRef[id] = counts[j];
        }
      }
      // The closest reference length; on a tie, the shorter one.
      const len = words[ref];
      if (refLen < 0) refLen = len;
      const d = len > testLen ? len - testLen : testLen - len;
      const best = refLen > testLen ? refLen - testLen : testLen - refLen;
      if (d < best || (d === best && len < refLen)) refLen = len;
    }
    // Clip each candidate n-gram count by its largest count in any single reference.
    const correct = new Array<number>(n).fill(0);
    const guess = new Array<number>(n).fill(0);
    for (let k = 0; k < n; k++) guess[k] = Math.max(0, testLen - k);
    for (let j = start[hyp]; j < start[hyp + 1]; j++) {
      const id = ngrams[j];
      if (maxOf[id] === hyp) correct[order[id] - 1] += maxRef[id] < counts[j] ? maxRef[id] : counts[j];
    }

    perImage.push(bleuFromCounts(correct, guess, testLen, refLen));
    for (let k = 0; k < n; k++) {
      totalCorrect[k] += correct[k];
      totalGuess[k] += guess[k];
    }
    totalTest += testLen;
    totalRef += refLen;
  }
  return { scores: bleuFromCounts(totalCorrect, totalGuess, totalTest, totalRef), perImage };
}

/**
 * BLEU-1..n of tokenized captions (words = `str.split()`), same inputs as `ciderD`.
 *
 * ```ts
 * const { scores: [b1, b2, b3, b4] } = bleu({ 1: ['a dog runs'] }, { 1: ['a dog runs'] });
 * ```
 */
export function bleu(gts: ById<readonly string[]>, res: ById<readonly string[]>, options: { n?: number } = {}): BleuResult {
  const { n = 4 } = options;
  checkOrder(n);
  const paired = pairCaptions(gts, res);
  const { scores, perImage } = bleuScores(countCorpus(paired, n));
  return { scores, perImage: new Map(paired.ids.map((id, i) => [id, perImage[i]])) };
}
