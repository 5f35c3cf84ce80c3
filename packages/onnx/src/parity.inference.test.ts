/**
 * The ONNX graphs against the official sample.py inference path (inference.json): the KV cache after the
 * cond tokens, eps with the CFG rows batched (cond then null rows), guidance applied as the official
 * forward_inference, the cfg-1 (conditions only) cache, and an AR continuation (clean tokens pushed).
 */
import { readSafetensors } from '@causalfusion/safetensors';
import { OrtDenoiser, type OrtDenoiserSession } from './denoiser';
import { f32, maxAbsDiff, printMeasured, readReference, record, refConfig, WEIGHTS } from './reference.test-util';

const TOL = 1e-4;
const ref = readReference('inference.json');
let denoiser: OrtDenoiser;
let session: OrtDenoiserSession;

beforeAll(async () => {
  denoiser = await OrtDenoiser.fromWeights(refConfig(ref), readSafetensors(WEIGHTS).tensors, { threads: 1 });
  session = await denoiser.start([3, 7, null, null]); // y_with_null = [3, 7, 10, 10]
});
afterAll(async () => {
  session.dispose();
  await denoiser.release();
  printMeasured('inference.json max abs errors (ORT)');
});

async function expectCache(s: OrtDenoiserSession, expected: any, name: string): Promise<void> {
  (await s.kvCache()).forEach((l, i) => {
    const e = expected[`layer${i}`];
    expect(l.shape).toEqual(e.k.shape);
    expect(record(`${name}.layer${i}.k`, maxAbsDiff(l.k, e.k.data))).toBeLessThan(TOL);
    expect(record(`${name}.layer${i}.v`, maxAbsDiff(l.v, e.v.data))).toBeLessThan(TOL);
  });
}

/** The official forward_inference on top of a [cond rows | null rows] prediction. */
function guide(out: Float32Array, scale: number, guided: boolean) {
  const per = out.length / 2;
  const epsCond = out.slice(0, per);
  const epsUncond = out.slice(per);
  const f = Math.fround;
  const output = guided ? epsCond.map((c, i) => f(epsUncond[i] + f(f(scale) * f(c - epsUncond[i])))) : epsCond;
  return { epsCond, epsUncond, output };
}

/** [rows of n] values twice (cond rows and null rows get the same inputs). */
const twice = (a: ArrayLike<number>) => {
  const out = new Float32Array(a.length * 2);
  out.set(Float32Array.from(a));
  out.set(Float32Array.from(a), a.length);
  return out;
};
const repeat = (ids: ArrayLike<number>, rows: number) => Int32Array.from({ length: rows * ids.length }, (_, i) => ids[i % ids.length]);
const raster = (rows: number) =>
  repeat(
    Int32Array.from({ length: 16 }, (_, i) => i),
    rows,
  );

describe('KV-cache inference through ONNX Runtime (sample.py path)', () => {
  it('the cache after the cond tokens matches (k after k_norm, before the scale)', async () => {
    expect(session.length).toBe(4);
    await expectCache(session, ref.kv_cache_after_cond, 'kv_cache_after_cond');
  });

  it.each(Object.keys(ref.cases).filter((k) => ref.cases[k].cfg_scale > 1))('forward_inference case %s (CFG rows batched)', async (name) => {
    const c = ref.cases[name];
    const out = await session.predictEps(twice(ref.xn.data), raster(4), 16, c.t);
    const [lo, hi] = c.cfg_interval;
    const g = guide(out, c.cfg_scale, lo <= c.t && c.t < hi);
    expect(lo <= c.t && c.t < hi).toBe(c.guidance_applied);
    expect(record(`${name}.eps_cond`, maxAbsDiff(g.epsCond, c.eps_cond.data))).toBeLessThan(TOL);
    expect(record(`${name}.eps_uncond`, maxAbsDiff(g.epsUncond, c.eps_uncond.data))).toBeLessThan(TOL);
    expect(record(`${name}.output`, maxAbsDiff(g.output, c.output.data))).toBeLessThan(TOL);
  });

  it('a conditions-only (cfg 1) session gives the cond branch', async () => {
    const small = await denoiser.start([3, 7]);
    try {
      const out = await small.predictEps(f32(ref.xn), raster(2), 16, 500);
      expect(record('t500_cfg1_nocfg_cache.output', maxAbsDiff(out, ref.cases.t500_cfg1_nocfg_cache.output.data))).toBeLessThan(TOL);
    } finally {
      small.dispose();
    }
  });

  it('AR continuation: predict 6 tokens, push them clean, predict the other 10', async () => {
    const a = ref.ar_continuation;
    const branch = await denoiser.start([3, 7, null, null]);
    try {
      const s1 = guide(await branch.predictEps(twice(a.xn_first.data), repeat(a.ids_first.data, 4), 6, 500), 4, true);
      expect(record('ar.step1.output', maxAbsDiff(s1.output, a.step1_first6_t500.output.data))).toBeLessThan(TOL);
      expect(record('ar.step1.eps_cond', maxAbsDiff(s1.epsCond, a.step1_first6_t500.eps_cond.data))).toBeLessThan(TOL);

      await branch.pushClean(twice(a.x_first_clean.data), repeat(a.ids_first.data, 4), 6);
      expect(branch.length).toBe(10);
      await expectCache(branch, a.kv_cache_after_clean, 'ar.kv_cache_after_clean');
      for (const key of ['step2_rest10_t500', 'step2_rest10_t5']) {
        const c = a[key];
        const g = guide(await branch.predictEps(twice(a.xn_rest.data), repeat(a.ids_rest.data, 4), 10, c.t), c.cfg_scale, true);
        expect(record(`ar.${key}.eps_cond`, maxAbsDiff(g.epsCond, c.eps_cond.data))).toBeLessThan(TOL);
        expect(record(`ar.${key}.eps_uncond`, maxAbsDiff(g.epsUncond, c.eps_uncond.data))).toBeLessThan(TOL);
        expect(record(`ar.${key}.output`, maxAbsDiff(g.output, c.output.data))).toBeLessThan(TOL);
      }
    } finally {
      branch.dispose();
    }
    // sessions are independent: the first one still holds only the cond tokens
    expect(session.length).toBe(4);
  });

  it('rejects bad inputs with a message that names the problem', async () => {
    await expect(denoiser.start([3, 11])).rejects.toThrow('condition 1: label 11 is not a class of this model; use 0..10 (10 = the null class)');
    await expect(denoiser.start([])).rejects.toThrow('give at least one condition');
    await expect(session.predictEps(new Float32Array(10), raster(4), 16, 5)).rejects.toThrow(
      'noised has 10 values, expected 256 ([rows=4, tokens=16, tokenDim=4])',
    );
    await expect(session.predictEps(new Float32Array(16), Int32Array.from([0, 1, 2, 16]), 1, 5)).rejects.toThrow(
      'noised positions: entry 3 is 16; positions are raster indices 0..15',
    );
    await expect(session.pushClean(new Float32Array(16), Int32Array.from([0, 1, 2, 3]), 2)).rejects.toThrow('tokens has 16 values, expected 32');
    await expect(session.predictEps(new Float32Array(16), Int32Array.from([0, 1, 2, 3]), 1, NaN)).rejects.toThrow('timestep NaN is invalid');
  });
});
