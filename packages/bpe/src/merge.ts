/**
 * The BPE merge loop on token ids.
 *
 * encoder.py's `bpe()` works on strings: it repeatedly takes the adjacent pair with the lowest merge
 * rank and joins every occurrence of it, left to right, until no adjacent pair has a rank. Working on
 * ids gives the same tokens because every merge's parts and result are vocabulary entries (checked
 * when the tokenizer is built), and avoids building strings in the hot loop.
 */

/** Ids must stay below this so that `left * ID_LIMIT + right` is an exact double (< 2^53). */
export const ID_LIMIT = 1 << 24;

/**
 * (left id, right id) -> `rank * ID_LIMIT + merged id`. Packing the rank in the high part means the
 * smallest value is the lowest rank, so one number comparison picks the next merge.
 */
export class MergeTable {
  private readonly table = new Map<number, number>();

  /** `merges[r] = [left, right, merged]` in rank order (rank = index). */
  constructor(merges: ReadonlyArray<readonly [number, number, number]>) {
    merges.forEach(([a, b, m], rank) => {
      const key = a * ID_LIMIT + b;
      // A pair listed twice keeps its last rank, like encoder.py's `dict(zip(bpe_merges, range(n)))`.
      this.table.set(key, rank * ID_LIMIT + m);
    });
  }

  get size(): number {
    return this.table.size;
  }

  /** The packed `rank * ID_LIMIT + merged` for the pair, or undefined when the pair never merges. */
  get(a: number, b: number): number | undefined {
    return this.table.get(a * ID_LIMIT + b);
  }
}

/** Pieces longer than this use the heap version, which is O(n log n) instead of O(n^2). */
const LONG_PIECE = 128;

/**
 * Merges `syms[0, n)` in place and returns the new length.
 */
export function mergeSymbols(syms: Int32Array, n: number, merges: MergeTable): number {
  return n > LONG_PIECE ? mergeLong(syms, n, merges) : mergeShort(syms, n, merges);
}

/** encoder.py's loop, literally: find the lowest-rank pair, join all its occurrences, repeat. */
function mergeShort(syms: Int32Array, n: number, merges: MergeTable): number {
  while (n > 1) {
    let best = Infinity;
    let at = -1;
    for (let k = 0; k + 1 < n; k++) {
      const v = merges.get(syms[k], syms[k + 1]);
      if (v !== undefined && v < best) {
        best = v;
        at = k;
      }
    }
    if (at < 0) break;
    const a = syms[at];
    const b = syms[at + 1];
    const merged = best % ID_LIMIT;
    // Occurrences before `at` cannot exist (the scan found the first one with this value).
    let w = at;
    for (let k = at; k < n;) {
      if (k + 1 < n && syms[k] === a && syms[k + 1] === b) {
        syms[w++] = merged;
        k += 2;
      } else {
        syms[w++] = syms[k++];
      }
    }
    n = w;
  }
  return n;
}

/**
 * The same merges for long pieces (a megabyte of text with no space is one piece): a linked list of
 * symbols and a min-heap of candidate pairs keyed by (packed rank, position). Popping the leftmost
 * lowest-rank pair and re-queuing its new neighbours gives encoder.py's result, because a merge's
 * result only takes part in merges of higher rank.
 */
function mergeLong(syms: Int32Array, n: number, merges: MergeTable): number {
  const next = new Int32Array(n);
  const prev = new Int32Array(n);
  const alive = new Uint8Array(n).fill(1);
  for (let k = 0; k < n; k++) {
    next[k] = k + 1 < n ? k + 1 : -1;
    prev[k] = k - 1;
  }
  const heap = new PairHeap();
  for (let k = 0; k + 1 < n; k++) {
    const v = merges.get(syms[k], syms[k + 1]);
    if (v !== undefined) heap.push(v, k);
  }
  while (heap.length > 0) {
    const [v, pos] = heap.pop();
    const right = next[pos];
    // Skip stale entries: the left symbol was merged away, or the pair at `pos` has changed.
    if (!alive[pos] || right < 0 || merges.get(syms[pos], syms[right]) !== v) continue;
    syms[pos] = v % ID_LIMIT;
    alive[right] = 0;
    next[pos] = next[right];
    if (next[right] >= 0) prev[next[right]] = pos;
    const p = prev[pos];
    if (p >= 0) {
      const pv = merges.get(syms[p], syms[pos]);
      if (pv !== undefined) heap.push(pv, p);
    }
    if (next[pos] >= 0) {
      const nv = merges.get(syms[pos], syms[next[pos]]);
      if (nv !== undefined) heap.push(nv, pos);
    }
  }
  let w = 0;
  for (let k = 0; k >= 0; k = next[k]) syms[w++] = syms[k];
  return w;
}

/** Binary min-heap of (value, position) pairs, ties broken by the smaller position. */
class PairHeap {
  private vals: number[] = [];
  private poss: number[] = [];

  get length(): number {
    return this.vals.length;
  }

  private less(i: number, j: number): boolean {
    return this.vals[i] < this.vals[j] || (this.vals[i] === this.vals[j] && this.poss[i] < this.poss[j]);
  }

  private swap(i: number, j: number): void {
    [this.vals[i], this.vals[j]] = [this.vals[j], this.vals[i]];
    [this.poss[i], this.poss[j]] = [this.poss[j], this.poss[i]];
  }

  push(v: number, pos: number): void {
    this.vals.push(v);
    this.poss.push(pos);
    let i = this.vals.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.less(i, parent)) break;
      this.swap(i, parent);
      i = parent;
    }
  }

  pop(): [number, number] {
    const top: [number, number] = [this.vals[0], this.poss[0]];
    const last = this.vals.length - 1;
    this.swap(0, last);
    this.vals.pop();
    this.poss.pop();
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < this.vals.length && this.less(l, m)) m = l;
      if (r < this.vals.length && this.less(r, m)) m = r;
      if (m === i) break;
      this.swap(i, m);
      i = m;
    }
    return top;
  }
}
