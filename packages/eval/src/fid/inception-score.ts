/**
 * Inception Score as the ADM evaluator computes it: softmax of the class logits, split into chunks of
 * `splitSize` (5000) images in order, IS_k = exp(mean_i KL(p(y|x_i) || p_k(y))) with p_k the chunk's
 * mean prediction, and the score is the mean over chunks. Streaming: per chunk only sum p and sum p log p.
 */
export class InceptionScoreAccumulator {
  readonly numClasses: number;
  readonly splitSize: number;
  private readonly scores: number[] = [];
  private sumP: Float64Array;
  private sumPLogP = 0;
  private inChunk = 0;

  constructor(numClasses: number, splitSize = 5000) {
    if (!Number.isInteger(numClasses) || numClasses < 2) throw new Error(`Inception Score needs at least 2 classes, got ${numClasses}`);
    if (!Number.isInteger(splitSize) || splitSize < 1) throw new Error(`splitSize must be a positive integer, got ${splitSize}`);
    this.numClasses = numClasses;
    this.splitSize = splitSize;
    this.sumP = new Float64Array(numClasses);
  }

  /** Adds rows of logits (row-major, numClasses per row). */
  add(logits: ArrayLike<number>): void {
    const c = this.numClasses;
    if (logits.length % c !== 0) throw new Error(`logits length ${logits.length} is not a multiple of ${c} classes`);
    const p = new Float64Array(c);
    for (let row = 0; row < logits.length / c; row++) {
      let max = -Infinity;
      for (let k = 0; k < c; k++) max = Math.max(max, logits[row * c + k]);
      let sum = 0;
      for (let k = 0; k < c; k++) sum += p[k] = Math.exp(logits[row * c + k] - max);
      for (let k = 0; k < c; k++) {
        const pk = p[k] / sum;
        this.sumP[k] += pk;
        if (pk > 0) this.sumPLogP += pk * Math.log(pk);
      }
      if (++this.inChunk === this.splitSize) this.closeChunk();
    }
  }

  private closeChunk(): void {
    const n = this.inChunk;
    let marginal = 0;
    for (let k = 0; k < this.numClasses; k++) {
      const q = this.sumP[k] / n;
      if (q > 0) marginal += q * Math.log(q);
    }
    // mean_i sum_k p_ik (log p_ik - log q_k) = (sum p log p) / n - sum_k q_k log q_k
    this.scores.push(Math.exp(this.sumPLogP / n - marginal));
    this.sumP = new Float64Array(this.numClasses);
    this.sumPLogP = 0;
    this.inChunk = 0;
  }

  /** Mean score over chunks (a final partial chunk counts as one chunk, like ADM's range(0, N, split)). */
  score(): number {
    if (this.inChunk > 0) this.closeChunk();
    if (this.scores.length === 0) throw new Error('Inception Score of zero images; add logits first');
    return this.scores.reduce((a, b) => a + b, 0) / this.scores.length;
  }
}
