import * as fs from 'fs';
import * as path from 'path';
import { createRng } from '@causalfusion/rng';
import { cumsum, equalSplits, getArWeights, getAttnMask, splitIntegerExpDecay } from './index';

const ref = JSON.parse(fs.readFileSync(path.resolve(__dirname, '../../../../shared/reference/causal_mask.json'), 'utf8'));

describe('getAttnMask', () => {
  it.each<[string, any]>(ref.attn_mask_cases.map((c: any) => [JSON.stringify(c.split_sizes), c]))('matches train.py for splits %s', (_s, c: any) => {
    const mask = getAttnMask(c.sample_len, c.cond_len, c.split_sizes);
    expect(mask.length).toBe(c.seq_len * c.seq_len);
    expect(Array.from(mask)).toEqual(c.mask.flat());
    expect(cumsum(c.split_sizes)).toEqual(c.cumsum);
  });
  it('rejects splits that do not cover the sample', () => {
    expect(() => getAttnMask(8, 2, [3, 4])).toThrow(/add up to 7 but the sample has 8 tokens/);
    expect(() => getAttnMask(8, 2, [8, 0])).toThrow(/AR step 1 has size 0/);
  });
});

describe('getArWeights', () => {
  it.each<[string, string, number, number, any]>(
    ref.ar_weights_cases.map((c: any) => [JSON.stringify(c.split_sizes), c.schedule, c.max_weight, c.min_weight, c]),
  )('matches train.py for %s %s max=%s min=%s', (_s, schedule, max, min, c: any) => {
    const w = getArWeights(c.split_sizes, max as number, min as number, schedule as any);
    const want = c.weights_float32;
    if (Array.isArray(want)) {
      expect(Array.from(w)).toEqual(want);
    } else {
      // max == min: train.py returns the scalar tensor(min); we return it once per token
      expect(Array.from(new Set(w))).toEqual([want]);
      expect(w.length).toBe(c.cumsum[c.cumsum.length - 1]);
    }
  });
  it('rejects unknown schedules', () => {
    expect(() => getArWeights([2, 2], 2, 1, 'exp' as any)).toThrow(/allowed: linear, cosine/);
  });
});

describe('splitIntegerExpDecay', () => {
  const d = ref.split_integer_exp_decay;
  const S = Number(d.S);
  const decay = Number(d.ar_step_decay);
  const probN: number[] = typeof d.prob_N === 'string' ? JSON.parse(d.prob_N) : d.prob_N;
  const probLast: number[] = typeof d.prob_last_split_size === 'string' ? JSON.parse(d.prob_last_split_size) : d.prob_last_split_size;
  const draws = 20_000;
  const rng = createRng(2024);
  const ns: number[] = [];
  const lasts: number[] = [];
  for (let i = 0; i < draws; i++) {
    const sizes = splitIntegerExpDecay(S, decay, rng);
    if (i < 50) expect(sizes.reduce((a, b) => a + b, 0)).toBe(S);
    ns.push(sizes.length);
    lasts.push(sizes[sizes.length - 1]);
  }

  /** Chi-square statistic with bins of expected count >= 5 (the tail pooled into one bin). */
  function chiSquare(values: number[], probs: number[]): { chi2: number; df: number } {
    const counts = new Array(probs.length).fill(0);
    for (const v of values) counts[v - 1]++;
    let chi2 = 0,
      df = -1,
      poolE = 0,
      poolO = 0;
    for (let i = 0; i < probs.length; i++) {
      const e = probs[i] * values.length;
      if (e >= 5) {
        chi2 += (counts[i] - e) ** 2 / e;
        df++;
      } else {
        poolE += e;
        poolO += counts[i];
      }
    }
    if (poolE > 0) {
      chi2 += (poolO - poolE) ** 2 / poolE;
      df++;
    }
    return { chi2, df };
  }
  // Upper 0.1% point of chi-square via the Wilson-Hilferty approximation.
  const crit = (df: number) => df * (1 - 2 / (9 * df) + 3.09 * Math.sqrt(2 / (9 * df))) ** 3;

  it('draws the number of AR steps from the exact distribution (chi-square)', () => {
    const { chi2, df } = chiSquare(ns, probN);
    expect(chi2).toBeLessThan(crit(df));
    const mean = ns.reduce((a, b) => a + b, 0) / draws;
    expect(Math.abs(mean - Number(d.exact_mean_N))).toBeLessThan(0.25);
  });
  it('draws the last split size from the exact distribution (chi-square)', () => {
    const { chi2, df } = chiSquare(lasts, probLast);
    expect(chi2).toBeLessThan(crit(df));
    const mean = lasts.reduce((a, b) => a + b, 0) / draws;
    expect(Math.abs(mean - Number(d.exact_mean_last_split))).toBeLessThan(4 * Math.sqrt(Number(d.exact_var_last_split) / draws));
  });
  it('decay 1.0 draws the number of AR steps uniformly', () => {
    const r = createRng(5);
    const counts = new Array(8).fill(0);
    for (let i = 0; i < 16_000; i++) counts[splitIntegerExpDecay(8, 1.0, r).length - 1]++;
    const chi2 = counts.reduce((a, c) => a + (c - 2000) ** 2 / 2000, 0);
    expect(chi2).toBeLessThan(24.3); // df=7, p=0.001
  });
  it('is reproducible from the seed and rejects bad arguments', () => {
    expect(splitIntegerExpDecay(64, 0.9, createRng(1))).toEqual(splitIntegerExpDecay(64, 0.9, createRng(1)));
    expect(splitIntegerExpDecay(1, 0.9, createRng(1))).toEqual([1]);
    expect(() => splitIntegerExpDecay(10, 0, createRng(1))).toThrow(/decay must be in \(0, 1\]/);
  });
});

describe('equalSplits', () => {
  it('splits as evenly as possible, larger steps first', () => {
    expect(equalSplits(16, 4)).toEqual([4, 4, 4, 4]);
    expect(equalSplits(10, 4)).toEqual([3, 3, 2, 2]);
    expect(equalSplits(5, 5)).toEqual([1, 1, 1, 1, 1]);
    expect(() => equalSplits(4, 5)).toThrow(/5 AR steps is more than the 4 tokens/);
  });
});
