import { Rng, createRng } from './index';

describe('determinism', () => {
  it('gives the same sequence for the same seed (pinned values: any platform must reproduce them)', () => {
    const r = createRng(42);
    const ints = Array.from({ length: 4 }, () => r.nextUint32());
    // Pinned on first run of this implementation: a change here breaks reproducibility of every run.
    expect(ints).toEqual(PINNED_42);
    expect(createRng(42).normal()).toBe(0.081382674337899);
    expect(createRng('causalfusion').uniform()).toBe(0.5656115199354679);
    const a = createRng('hello');
    const b = createRng('hello');
    for (let i = 0; i < 1000; i++) expect(a.normal()).toBe(b.normal());
  });
  it('different seeds give different streams; numbers, bigints and strings are all seeds', () => {
    expect(createRng(1).nextUint32()).not.toBe(createRng(2).nextUint32());
    expect(createRng(2 ** 40).nextUint32()).not.toBe(createRng(0).nextUint32());
    expect(createRng(5n).nextUint32()).toBe(createRng(5).nextUint32());
    expect(createRng('a').nextUint32()).not.toBe(createRng('a\0').nextUint32());
  });
  it('rejects bad seeds', () => {
    expect(() => createRng(-1)).toThrow(/non-negative/);
    expect(() => createRng(1.5)).toThrow(/safe integer/);
  });
  it('getState/setState round-trips, including a pending normal', () => {
    const r = createRng(7);
    r.normal(); // leaves a spare
    const saved = JSON.parse(JSON.stringify(r.getState()));
    const want = [r.normal(), r.uniform(), r.nextUint32()];
    const s = Rng.fromState(saved);
    expect([s.normal(), s.uniform(), s.nextUint32()]).toEqual(want);
    expect(() => s.setState({ s: [0, 0, 0, 0], spare: null })).toThrow(/all-zero/);
    expect(() => s.setState({ s: [1, 2] } as any)).toThrow(/four unsigned 32-bit integers/);
  });
  it('fork gives reproducible, distinct streams without advancing the parent', () => {
    const r = createRng(3);
    const before = r.getState();
    const f0 = r.fork(0).uniformArray(5);
    const f1 = r.fork(1).uniformArray(5);
    expect(r.getState()).toEqual(before);
    expect(Array.from(r.fork(0).uniformArray(5))).toEqual(Array.from(f0));
    expect(Array.from(f1)).not.toEqual(Array.from(f0));
  });
});

describe('distributions', () => {
  const N = 200_000;
  it('uniform is in [0,1) with mean 1/2 and variance 1/12', () => {
    const r = createRng(11);
    let s = 0,
      s2 = 0,
      lo = 1,
      hi = 0;
    for (let i = 0; i < N; i++) {
      const u = r.uniform();
      s += u;
      s2 += u * u;
      lo = Math.min(lo, u);
      hi = Math.max(hi, u);
    }
    expect(lo).toBeGreaterThanOrEqual(0);
    expect(hi).toBeLessThan(1);
    expect(Math.abs(s / N - 0.5)).toBeLessThan(4 * Math.sqrt(1 / 12 / N));
    expect(Math.abs(s2 / N - (s / N) ** 2 - 1 / 12)).toBeLessThan(0.002);
  });
  it('normal has mean 0, variance 1 and the right tails', () => {
    const r = createRng(12);
    let s = 0,
      s2 = 0,
      s4 = 0,
      beyond2 = 0;
    for (let i = 0; i < N; i++) {
      const z = r.normal();
      s += z;
      s2 += z * z;
      s4 += z ** 4;
      if (Math.abs(z) > 2) beyond2++;
    }
    expect(Math.abs(s / N)).toBeLessThan(4 / Math.sqrt(N));
    expect(Math.abs(s2 / N - 1)).toBeLessThan(0.015);
    expect(Math.abs(s4 / N - 3)).toBeLessThan(0.1); // kurtosis of a Gaussian
    expect(Math.abs(beyond2 / N - 0.0455)).toBeLessThan(0.003);
    const m = createRng(1).normal(10, 0.001);
    expect(Math.abs(m - 10)).toBeLessThan(0.01);
  });
  it('uniformInt passes a chi-square test and has no modulo bias', () => {
    const r = createRng(13);
    const k = 7;
    const counts = new Array(k).fill(0);
    for (let i = 0; i < 70_000; i++) counts[r.uniformInt(k)]++;
    const chi2 = counts.reduce((a, c) => a + (c - 10_000) ** 2 / 10_000, 0);
    expect(chi2).toBeLessThan(22.46); // df=6, p=0.001
    // 3 * 2^30 does not divide 2^32: a modulo-biased draw would favour the low third.
    const n = 3 * 2 ** 30;
    let low = 0;
    for (let i = 0; i < 30_000; i++) if (r.uniformInt(n) < 2 ** 30) low++;
    expect(Math.abs(low / 30_000 - 1 / 3)).toBeLessThan(0.015);
    expect(() => r.uniformInt(0)).toThrow(/positive integer/);
  });
  it('permutation is a permutation and every position is uniform', () => {
    const r = createRng(14);
    const n = 5;
    const pos = Array.from({ length: n }, () => new Array(n).fill(0));
    const T = 50_000;
    for (let i = 0; i < T; i++) {
      const p = r.permutation(n);
      if ([...p].sort().join() !== '0,1,2,3,4') throw new Error(`not a permutation: ${p}`);
      p.forEach((v, j) => pos[v][j]++);
    }
    for (const row of pos) for (const c of row) expect(Math.abs(c / T - 1 / n)).toBeLessThan(0.01);
  });
  it('categorical follows the weights (unnormalised) and skips zero weights', () => {
    const r = createRng(15);
    const w = [1, 0, 2, 7];
    const counts = [0, 0, 0, 0];
    const T = 100_000;
    for (let i = 0; i < T; i++) counts[r.categorical(w)]++;
    expect(counts[1]).toBe(0);
    const chi2 = [0, 2, 3].reduce((a, i) => a + (counts[i] - (T * w[i]) / 10) ** 2 / ((T * w[i]) / 10), 0);
    expect(chi2).toBeLessThan(13.8); // df=2, p=0.001
    expect(() => r.categorical([0, 0])).toThrow(/all weights are zero/);
    expect(() => r.categorical([1, -1])).toThrow(/weight 1 is -1/);
    expect(() => r.categorical([1, NaN])).toThrow(/weight 1 is NaN/);
  });
});

const PINNED_42 = [2860261899, 2413146512, 4140205957, 2485545344];
