/**
 * The dual factorization shared by training and sampling: how the L tokens of a sample are split into
 * AR steps κ1..κS, which tokens may attend to which (the generalized causal mask), and how the loss
 * of each AR step is weighted. Each function follows the official train.py.
 */
import type { Rng } from '@causalfusion/rng';

/** [0, s0, s0+s1, ..., L]: where each AR step starts in the (ordered) token sequence. */
export function cumsum(splitSizes: ArrayLike<number>): number[] {
  const out = [0];
  for (let i = 0; i < splitSizes.length; i++) out.push(out[i] + splitSizes[i]);
  return out;
}

/** Check that split sizes are positive integers adding up to `sampleLen`. */
export function checkSplitSizes(splitSizes: ArrayLike<number>, sampleLen: number): void {
  if (splitSizes.length === 0) throw new RangeError('split sizes: at least one AR step is needed');
  let total = 0;
  for (let i = 0; i < splitSizes.length; i++) {
    const s = splitSizes[i];
    if (!Number.isInteger(s) || s < 1) throw new RangeError(`split sizes: AR step ${i} has size ${s}; each must be a positive integer`);
    total += s;
  }
  if (total !== sampleLen) {
    throw new RangeError(`split sizes add up to ${total} but the sample has ${sampleLen} tokens; they must add up to ${sampleLen}`);
  }
}

/**
 * S AR steps of (nearly) equal size over L tokens: the first L mod S steps get one token more.
 * `equalSplits(16, 4)` is [4, 4, 4, 4]; `equalSplits(10, 4)` is [3, 3, 2, 2].
 */
export function equalSplits(sampleLen: number, arSteps: number): number[] {
  if (!Number.isInteger(arSteps) || arSteps < 1) throw new RangeError(`AR steps must be a positive integer, got ${arSteps}`);
  if (arSteps > sampleLen) {
    throw new RangeError(`${arSteps} AR steps is more than the ${sampleLen} tokens of a sample; use at most ${sampleLen} (token-by-token)`);
  }
  const base = Math.floor(sampleLen / arSteps);
  const extra = sampleLen % arSteps;
  return Array.from({ length: arSteps }, (_, i) => base + (i < extra ? 1 : 0));
}

/**
 * Random split of L tokens into AR steps for training (the official `split_integer_exp_decay`):
 * the number of steps S is drawn with P(S = s) ∝ decay^(s-1), s = 1..L (decay 1.0: uniform), then
 * S-1 distinct cut points are drawn uniformly from 1..L-1. Returns the S split sizes in order.
 */
export function splitIntegerExpDecay(L: number, decay: number, rng: Rng): number[] {
  if (!Number.isInteger(L) || L < 1) throw new RangeError(`splitIntegerExpDecay: the token count must be a positive integer, got ${L}`);
  if (!(decay > 0 && decay <= 1)) throw new RangeError(`splitIntegerExpDecay: decay must be in (0, 1], got ${decay}`);
  let S: number;
  if (decay === 1) {
    S = 1 + rng.uniformInt(L);
  } else {
    const weights = Array.from({ length: L }, (_, i) => decay ** i);
    S = 1 + rng.categorical(weights);
  }
  // S-1 distinct cut points from 1..L-1: a partial Fisher-Yates shuffle.
  const pool = Array.from({ length: L - 1 }, (_, i) => i + 1);
  for (let i = 0; i < S - 1; i++) {
    const j = i + rng.uniformInt(pool.length - i);
    [pool[i], pool[j]] = [pool[j], pool[i]];
  }
  const cuts = pool.slice(0, S - 1).sort((a, b) => a - b);
  const bounds = [0, ...cuts, L];
  return Array.from({ length: S }, (_, i) => bounds[i + 1] - bounds[i]);
}

/**
 * The generalized causal mask of the training sequence [cond | clean tokens of AR steps 1..S-1 |
 * noised tokens of all steps], as a row-major seqLen x seqLen Uint8Array with 1 = MASKED (the
 * official layout; row = query, column = key).
 * - cond tokens attend to cond tokens only;
 * - a clean token of step k attends to cond and to the clean tokens of steps 1..k (its own included);
 * - a noised token of step k attends to cond, the clean tokens of steps 1..k-1 and the noised tokens
 *   of step k.
 */
export function getAttnMask(sampleLen: number, condLen: number, splitSizes: ArrayLike<number>): Uint8Array {
  checkSplitSizes(splitSizes, sampleLen);
  const bounds = cumsum(splitSizes);
  const S = splitSizes.length;
  const ctxLen = sampleLen - splitSizes[S - 1];
  const seqLen = condLen + ctxLen + sampleLen;
  const mask = new Uint8Array(seqLen * seqLen).fill(1);
  const open = (row: number, colStart: number, colEnd: number) => mask.fill(0, row * seqLen + colStart, row * seqLen + colEnd);
  for (let r = 0; r < condLen; r++) open(r, 0, condLen);
  for (let k = 0; k < S; k++) {
    const [start, end] = [bounds[k], bounds[k + 1]];
    if (k < S - 1) {
      // clean tokens of step k: block-causal over the clean context, own step included
      for (let i = start; i < end; i++) {
        open(condLen + i, 0, condLen);
        open(condLen + i, condLen, condLen + end);
      }
    }
    for (let i = start; i < end; i++) {
      const row = condLen + ctxLen + i;
      open(row, 0, condLen);
      open(row, condLen, condLen + start); // clean tokens of earlier steps
      open(row, condLen + ctxLen + start, condLen + ctxLen + end); // its own noised step
    }
  }
  return mask;
}

export type ArWeightSchedule = 'linear' | 'cosine';

/**
 * Loss weight of each noised token (the official `get_ar_weights`): constant within an AR step and
 * evaluated at the step's first token x = cumsum[k], falling from maxWeight at x = 0 towards
 * minWeight at x = L. `linear`: max - (max - min) x / L; `cosine`: (max - min)/2 cos(pi x / L) + (max + min)/2.
 * Float32, as the official tensor.
 */
export function getArWeights(splitSizes: ArrayLike<number>, maxWeight = 2, minWeight = 1, schedule: ArWeightSchedule = 'linear'): Float32Array {
  const bounds = cumsum(splitSizes);
  const L = bounds[bounds.length - 1];
  const out = new Float32Array(L);
  if (schedule !== 'linear' && schedule !== 'cosine') {
    throw new RangeError(`unknown AR weight schedule "${schedule}"; allowed: linear, cosine`);
  }
  for (let k = 0; k < splitSizes.length; k++) {
    const x = bounds[k];
    let w: number;
    if (maxWeight === minWeight) w = minWeight;
    else if (schedule === 'linear') w = maxWeight - ((maxWeight - minWeight) / L) * x;
    else w = (Math.cos((Math.PI / L) * x) * (maxWeight - minWeight)) / 2 + (maxWeight + minWeight) / 2;
    out.fill(w, bounds[k], bounds[k + 1]);
  }
  return out;
}
