/**
 * CIDEr-D as pycocoevalcap's `Cider` computes it (n = 4, sigma = 6, clipped tf-idf, x10).
 *
 * Conventions a port gets wrong (../shared/reference/cider.json pins them down):
 * - document frequencies come from the references of the set being scored, and idf uses
 *   log(number of images), so one image's score depends on the whole set;
 * - the "length" in the Gaussian length penalty counts 2-grams, not words;
 * - candidate n-grams never seen in any reference get the full idf, log(number of images).
 */
import { ById, CountedCorpus, ImageId, checkOrder, countCorpus, pairCaptions } from './ngrams';

// Module-level aliases: under jest's vm sandbox each lookup of the global `Math` inside a hot loop is slow.
const { exp, log, sqrt } = Math;

export interface CiderOptions {
  /** Standard deviation of the Gaussian length penalty, in 2-grams. Default 6. */
  sigma?: number;
  /** Longest n-gram. Default 4. */
  n?: number;
}

export interface CiderResult {
  /** Corpus CIDEr-D: the mean of the per-image scores. */
  score: number;
  /** CIDEr-D of each image, keyed by the ids of `gts`, in their order. */
  perImage: Map<ImageId, number>;
}

/** CIDEr-D of every image of a counted corpus, in its order. */
export function ciderScores(corpus: CountedCorpus, sigma = 6): number[] {
  if (!(sigma > 0) || !Number.isFinite(sigma)) throw new RangeError(`sigma must be a positive number, got ${sigma}`);
  const { n, images, order, ngrams, counts, start, refStart } = corpus;
  const numIds = order.length;
  const numCaptions = start.length - 1;

  // Document frequency: the number of images whose references contain the n-gram (once per image).
  const df = new Float64Array(numIds);
  const lastImage = new Int32Array(numIds).fill(-1);
  for (let image = 0; image < images; image++) {
    for (let j = start[refStart[image]]; j < start[refStart[image + 1]]; j++) {
      const id = ngrams[j];
      if (lastImage[id] !== image) {
        lastImage[id] = image;
        df[id] += 1;
      }
    }
  }
  // idf = log(images) - log(df); an n-gram no reference has gets the full log(images).
  const refLen = log(images);
  const idf = new Float64Array(numIds);
  for (let id = 0; id < numIds; id++) idf[id] = refLen - log(df[id] > 1 ? df[id] : 1);

  // Per caption and order: the norm of its tf-idf vector; per caption: its 2-gram count, which is
  // pycocoevalcap's "length" in the length penalty.
  const norms = new Float64Array(numCaptions * n);
  const bigrams = new Int32Array(numCaptions);
  for (let c = 0; c < numCaptions; c++) {
    for (let j = start[c]; j < start[c + 1]; j++) {
      const k = order[ngrams[j]] - 1;
      const w = counts[j] * idf[ngrams[j]];
      norms[c * n + k] += w * w;
      if (k === 1) bigrams[c] += counts[j];
    }
  }
  for (let i = 0; i < norms.length; i++) norms[i] = sqrt(norms[i]);

  // The tf-idf weight of n-gram id in the reference being compared: valid when refOf[id] is that reference.
  const refWeight = new Float64Array(numIds);
  const refOf = new Int32Array(numIds).fill(-1);
  const twoSigma2 = 2 * sigma * sigma;
  const val = new Float64Array(n);
  const scores: number[] = [];
  for (let hyp = 0; hyp < images; hyp++) {
    const sum = new Float64Array(n);
    for (let ref = refStart[hyp]; ref < refStart[hyp + 1]; ref++) {
      for (let j = start[ref]; j < start[ref + 1]; j++) {
        refOf[ngrams[j]] = ref;
        refWeight[ngrams[j]] = counts[j] * idf[ngrams[j]];
      }
      // Clipped cosine similarity per order: sum over the candidate's n-grams of min(w_hyp, w_ref) * w_ref.
      val.fill(0);
      for (let j = start[hyp]; j < start[hyp + 1]; j++) {
        const id = ngrams[j];
        if (refOf[id] !== ref) continue;
        const wRef = refWeight[id];
        const wHyp = counts[j] * idf[id];
        val[order[id] - 1] += (wHyp < wRef ? wHyp : wRef) * wRef;
      }
      const delta = bigrams[hyp] - bigrams[ref];
      const penalty = exp(-(delta * delta) / twoSigma2);
      for (let k = 0; k < n; k++) {
        const normHyp = norms[hyp * n + k];
        const normRef = norms[ref * n + k];
        const cos = normHyp !== 0 && normRef !== 0 ? val[k] / (normHyp * normRef) : val[k];
        sum[k] += cos * penalty;
      }
    }
    // Mean over orders, mean over references, times 10.
    let total = 0;
    for (let k = 0; k < n; k++) total += sum[k];
    scores.push((total / n / (refStart[hyp + 1] - refStart[hyp])) * 10);
  }
  return scores;
}

/**
 * CIDEr-D of tokenized captions (words = `str.split()`): `gts` maps each image id to its references,
 * `res` to a one-element list holding its candidate. Both must hold the same ids.
 *
 * ```ts
 * const { score, perImage } = ciderD({ 1: ['a dog runs', 'a dog is running'] }, { 1: ['a dog runs'] });
 * ```
 */
export function ciderD(gts: ById<readonly string[]>, res: ById<readonly string[]>, options: CiderOptions = {}): CiderResult {
  const { sigma = 6, n = 4 } = options;
  checkOrder(n);
  const paired = pairCaptions(gts, res);
  const scores = ciderScores(countCorpus(paired, n), sigma);
  return { score: mean(scores), perImage: new Map(paired.ids.map((id, i) => [id, scores[i]])) };
}

export function mean(values: readonly number[]): number {
  let s = 0;
  for (const v of values) s += v;
  return s / values.length;
}
