/**
 * @causalfusion/rng: a seeded random number generator that gives the same numbers on every platform.
 *
 * The core is xoshiro128** (Blackman & Vigna), which needs only 32-bit integer arithmetic
 * (`Math.imul`, shifts), so its output does not depend on the CPU, the OS or the JS engine.
 * Seeds are expanded with splitmix32. Floats are built from integer draws; normals use the Marsaglia
 * polar method, which needs only `Math.log` and `Math.sqrt` (V8 computes `Math.log` with its own fdlibm
 * port, identical on every platform it runs on).
 *
 * Everything that training and sampling draw (token orders, AR split sizes, timesteps, noise, label
 * dropout) comes from here, so a run is reproducible across tfjs backends and ONNX.
 */

/** A seed: a safe integer, a bigint or any string. */
export type Seed = number | bigint | string;

/** The full state of an {@link Rng}; JSON-serialisable so it can live in a checkpoint. */
export interface RngState {
  /** The four 32-bit words of the xoshiro128** state (unsigned). */
  s: [number, number, number, number];
  /** The second normal of the last polar-method pair, not yet returned (null when none is pending). */
  spare: number | null;
}

const TWO_POW_32 = 4294967296;
const TWO_POW_53 = 9007199254740992;

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}

/** splitmix32 step: turns any 32-bit value into a well-mixed one. */
function mix32(a: number): number {
  let t = (a + 0x9e3779b9) | 0;
  t = Math.imul(t ^ (t >>> 16), 0x21f0aaad);
  t = Math.imul(t ^ (t >>> 15), 0x735a2d97);
  return (t ^ (t >>> 15)) >>> 0;
}

/** Turn a seed into a list of 32-bit words (the seed's full information, no truncation). */
function seedWords(seed: Seed): number[] {
  if (typeof seed === 'string') {
    // UTF-16 code units, folded in one by one; the length goes first so "a" and "a\0" differ.
    const words = [seed.length >>> 0];
    for (let i = 0; i < seed.length; i++) words.push(seed.charCodeAt(i));
    return words;
  }
  if (typeof seed === 'bigint') {
    if (seed < 0n) throw new RangeError(`seed must be non-negative, got ${seed}`);
    const words: number[] = [];
    let v = seed;
    do {
      words.push(Number(v & 0xffffffffn));
      v >>= 32n;
    } while (v > 0n);
    return words;
  }
  if (!Number.isSafeInteger(seed) || seed < 0) {
    throw new RangeError(`seed must be a non-negative safe integer, a bigint or a string; got ${seed}`);
  }
  const hi = Math.floor(seed / TWO_POW_32) >>> 0;
  return hi ? [seed >>> 0, hi] : [seed >>> 0]; // same words as the equal bigint
}

function stateFromWords(words: number[]): [number, number, number, number] {
  let h = 0x6a09e667;
  for (const w of words) h = mix32(h ^ mix32(w >>> 0));
  const s: [number, number, number, number] = [0, 0, 0, 0];
  for (let i = 0; i < 4; i++) {
    h = mix32(h + i);
    s[i] = h;
  }
  // xoshiro's only forbidden state is all zeros.
  if ((s[0] | s[1] | s[2] | s[3]) === 0) s[0] = 1;
  return s;
}

/** A seeded random number generator (xoshiro128**). Create one with {@link createRng}. */
export class Rng {
  // the four state words as int32 in a typed array: plain fields would hold values beyond V8's small
  // integers as boxed numbers, and every draw would pay for it
  private readonly s = new Int32Array(4);
  // the polar method's second draw; a number field and a flag (not number | null) keep V8 on its fast path
  private spare = 0;
  private hasSpare = false;

  constructor(seed: Seed = 0) {
    const s = stateFromWords(seedWords(seed));
    this.s.set(s);
  }

  /** Build a generator from a state saved by {@link Rng.getState}. */
  static fromState(state: RngState): Rng {
    const r = new Rng(0);
    r.setState(state);
    return r;
  }

  /** The next raw 32-bit unsigned integer. */
  nextUint32(): number {
    const s = this.s;
    const result = Math.imul(rotl(Math.imul(s[1], 5), 7), 9) >>> 0;
    const t = s[1] << 9;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 11);
    return result;
  }

  /** Uniform in [0, 1) with 53 random bits, or in [lo, hi) when bounds are given. */
  uniform(lo = 0, hi = 1): number {
    const a = this.nextUint32() >>> 5; // 27 bits
    const b = this.nextUint32() >>> 6; // 26 bits
    const u = (a * 67108864 + b) / TWO_POW_53;
    return lo + (hi - lo) * u;
  }

  /** uniform() in [0, 1), without the bounds arithmetic (the same value: 0 + 1 * u is u). */
  private unit(): number {
    const a = this.nextUint32() >>> 5;
    const b = this.nextUint32() >>> 6;
    return (a * 67108864 + b) / TWO_POW_53;
  }

  /** Uniform integer in [0, n), without modulo bias. */
  uniformInt(n: number): number {
    if (!Number.isSafeInteger(n) || n <= 0) throw new RangeError(`uniformInt: n must be a positive integer, got ${n}`);
    if (n > TWO_POW_32) return Math.floor(this.uniform() * n);
    // Reject the top partial bucket so every residue is equally likely.
    const limit = TWO_POW_32 - (TWO_POW_32 % n);
    for (;;) {
      const x = this.nextUint32();
      if (x < limit) return x % n;
    }
  }

  /** A standard normal draw scaled to N(mean, std^2) (Marsaglia polar method). */
  normal(mean = 0, std = 1): number {
    if (this.hasSpare) {
      this.hasSpare = false;
      return mean + std * this.spare;
    }
    for (;;) {
      const u = 2 * this.unit() - 1;
      const v = 2 * this.unit() - 1;
      const s = u * u + v * v;
      if (s > 0 && s < 1) {
        const f = Math.sqrt((-2 * Math.log(s)) / s);
        this.spare = v * f;
        this.hasSpare = true;
        return mean + std * (u * f);
      }
    }
  }

  /** Fill an array with N(0, 1) draws (in order), and return it. */
  fillNormal<T extends { length: number; [i: number]: number }>(out: T): T {
    for (let i = 0; i < out.length; i++) out[i] = this.normal();
    return out;
  }

  /** Fill an array with U[0, 1) draws, and return it. */
  fillUniform<T extends { length: number; [i: number]: number }>(out: T): T {
    for (let i = 0; i < out.length; i++) out[i] = this.uniform();
    return out;
  }

  /** `n` standard normals as a new Float64Array. */
  normalArray(n: number): Float64Array {
    return this.fillNormal(new Float64Array(n));
  }

  /** `n` uniforms in [0, 1) as a new Float64Array. */
  uniformArray(n: number): Float64Array {
    return this.fillUniform(new Float64Array(n));
  }

  /** True with probability p. */
  bernoulli(p: number): boolean {
    return this.uniform() < p;
  }

  /** A uniformly random permutation of 0..n-1 (Fisher-Yates). */
  permutation(n: number): Int32Array {
    const out = new Int32Array(n);
    for (let i = 0; i < n; i++) out[i] = i;
    return this.shuffle(out);
  }

  /** Shuffle an array in place (Fisher-Yates) and return it. */
  shuffle<T extends { length: number; [i: number]: any }>(arr: T): T {
    for (let i = arr.length - 1; i > 0; i--) {
      const j = this.uniformInt(i + 1);
      const tmp = arr[i];
      arr[i] = arr[j];
      arr[j] = tmp;
    }
    return arr;
  }

  /**
   * Draw an index with probability proportional to `weights[i]` (weights need not sum to 1).
   * Throws on negative, non-finite or all-zero weights.
   */
  categorical(weights: ArrayLike<number>): number {
    let total = 0;
    for (let i = 0; i < weights.length; i++) {
      const w = weights[i];
      if (!(w >= 0) || !Number.isFinite(w)) {
        throw new RangeError(`categorical: weight ${i} is ${w}; weights must be finite and non-negative`);
      }
      total += w;
    }
    if (!(total > 0)) throw new RangeError('categorical: all weights are zero; at least one must be positive');
    const target = this.uniform() * total;
    let acc = 0;
    let last = 0;
    for (let i = 0; i < weights.length; i++) {
      if (weights[i] > 0) last = i;
      acc += weights[i];
      if (target < acc) return i;
    }
    return last; // only reached through rounding at the very top of the range
  }

  /** A copy of the state, e.g. to store in a checkpoint. */
  getState(): RngState {
    return { s: [this.s[0] >>> 0, this.s[1] >>> 0, this.s[2] >>> 0, this.s[3] >>> 0], spare: this.hasSpare ? this.spare : null };
  }

  /** Restore a state saved by {@link getState}. */
  setState(state: RngState): void {
    const s = state?.s;
    if (!Array.isArray(s) || s.length !== 4 || s.some((w) => !Number.isInteger(w) || w < 0 || w >= TWO_POW_32)) {
      throw new TypeError('setState: expected { s: [four unsigned 32-bit integers], spare: number | null }');
    }
    if ((s[0] | s[1] | s[2] | s[3]) === 0) throw new RangeError('setState: the all-zero state is invalid for xoshiro128**');
    this.s.set(s.map((w) => w | 0));
    this.hasSpare = typeof state.spare === 'number';
    this.spare = this.hasSpare ? (state.spare as number) : 0;
  }

  /** An independent copy that continues from the same state. */
  clone(): Rng {
    return Rng.fromState(this.getState());
  }

  /**
   * A new generator for sub-stream `stream` (e.g. one per worker), derived from the current state
   * without advancing this one. Different streams give unrelated sequences.
   */
  fork(stream: number): Rng {
    if (!Number.isSafeInteger(stream) || stream < 0) throw new RangeError(`fork: stream must be a non-negative integer, got ${stream}`);
    const r = new Rng(0);
    const s = stateFromWords([this.s[0] >>> 0, this.s[1] >>> 0, this.s[2] >>> 0, this.s[3] >>> 0, 0x5eed, ...seedWords(stream)]);
    r.setState({ s, spare: null });
    return r;
  }
}

/** Create a seeded generator. The same seed gives the same sequence on every platform. */
export function createRng(seed: Seed = 0): Rng {
  return new Rng(seed);
}
