/**
 * Parity with the official sample.py inference path (inference.json): cond tokens, the KV cache after
 * the cond tokens, forward_inference with CFG and the CFG interval, no-CFG with a 2-row cache, the
 * timestep embedding, and an AR continuation (clean tokens pushed into the cache).
 */
import { initBackend } from '@causalfusion/backend';
import { loadModel } from './checkpoint';
import type { CausalDiffusionModel } from './model';
import type { KVCache } from './layers';
import { f32, i32, maxAbsDiff, printMeasured, readReference, record, refConfig, WEIGHTS } from './reference.test-util';
import { tf } from '@causalfusion/backend';

const TOL = 1e-4;
const ref = readReference('inference.json');
let model: CausalDiffusionModel;
let cache: KVCache;

beforeAll(async () => {
  await initBackend({ backend: 'wasm', quiet: true });
  model = await loadModel(WEIGHTS, { config: refConfig(ref) });
  cache = model.createCache(ref.y_with_null.data);
});
afterAll(() => {
  cache.dispose();
  model.dispose();
  printMeasured('inference.json max abs errors');
});

function expectCache(c: KVCache, expected: any, name: string): void {
  const layers = c.toOfficial();
  layers.forEach((l, i) => {
    const e = expected[`layer${i}`];
    expect(l.shape).toEqual(e.k.shape);
    expect(record(`${name}.layer${i}.k`, maxAbsDiff(l.k, e.k.data))).toBeLessThan(TOL);
    expect(record(`${name}.layer${i}.v`, maxAbsDiff(l.v, e.v.data))).toBeLessThan(TOL);
  });
}

const raster = (rows: number, L: number) => Int32Array.from({ length: rows * L }, (_, i) => i % L);

describe('KV-cache inference (sample.py path)', () => {
  it('cond tokens and the cache after them match (k stored after k_norm, before the scale)', () => {
    const ids = i32(ref.y_with_null);
    const cond = tf.tidy(() =>
      tf.add(tf.reshape(tf.gather(model.params.labelTable, tf.tensor1d(ids, 'int32')), [4, 4, 64]), model.params.condPosEmbed).dataSync(),
    );
    expect(record('cond_tokens', maxAbsDiff(cond, ref.cond_tokens.data))).toBeLessThan(TOL);
    expect(cache.length).toBe(4);
    expectCache(cache, ref.kv_cache_after_cond, 'kv_cache_after_cond');
  });

  it('the timestep embedding matches for t in {0, 1, 5, 10, 53, 500, 900, 999}', () => {
    const te = ref.timestep_embedding_reference;
    const got = tf.tidy(() => model.timestepEmbed(te.t.data).dataSync());
    expect(record('t_embed', maxAbsDiff(got, te.t_embed.data))).toBeLessThan(TOL);
  });

  it.each(Object.keys(ref.cases).filter((k) => ref.cases[k].cfg_scale > 1))('forward_inference case %s (CFG, interval)', (name) => {
    const c = ref.cases[name];
    const out = model.forwardInference(f32(ref.xn), c.t, cache, raster(2, 16), 16, c.cfg_scale, c.cfg_interval);
    expect(out.guided).toBe(c.guidance_applied);
    expect(record(`${name}.eps_cond`, maxAbsDiff(out.epsCond, c.eps_cond.data))).toBeLessThan(TOL);
    expect(record(`${name}.eps_uncond`, maxAbsDiff(out.epsUncond!, c.eps_uncond.data))).toBeLessThan(TOL);
    expect(record(`${name}.output`, maxAbsDiff(out.eps, c.output.data))).toBeLessThan(TOL);
    if (!c.guidance_applied) expect(Array.from(out.eps)).toEqual(Array.from(out.epsCond));
  });

  it('cfg_scale 1 with a 2-row (conditions only) cache gives the cond branch', () => {
    const c = ref.cases.t500_cfg1_nocfg_cache;
    const small = model.createCache(ref.y);
    try {
      const out = model.forwardInference(f32(ref.xn), c.t, small, raster(2, 16), 16, 1);
      expect(out.epsUncond).toBeNull();
      expect(record('t500_cfg1_nocfg_cache.output', maxAbsDiff(out.eps, c.output.data))).toBeLessThan(TOL);
    } finally {
      small.dispose();
    }
  });

  it('AR continuation: predict the first 6 tokens, push them clean, predict the other 10', () => {
    const a = ref.ar_continuation;
    const first = i32(a.ids_first);
    const rest = i32(a.ids_rest);
    const rep = (ids: Int32Array, rows: number) => Int32Array.from({ length: rows * ids.length }, (_, i) => ids[i % ids.length]);
    const s1 = model.forwardInference(f32(a.xn_first), 500, cache, rep(first, 2), 6, 4);
    expect(record('ar.step1.output', maxAbsDiff(s1.eps, a.step1_first6_t500.output.data))).toBeLessThan(TOL);
    expect(record('ar.step1.eps_cond', maxAbsDiff(s1.epsCond, a.step1_first6_t500.eps_cond.data))).toBeLessThan(TOL);

    const emb = model.embedTokens(f32(a.x_first_clean), rep(first, 2), 2, 6);
    expect(record('ar.clean_tokens_embedded', maxAbsDiff(emb.dataSync(), a.clean_tokens_embedded.data))).toBeLessThan(TOL);
    emb.dispose();

    // the CFG rows get the same clean tokens: [2 rows] twice
    const clean = f32(a.x_first_clean);
    const cleanCfg = new Float32Array(clean.length * 2);
    cleanCfg.set(clean);
    cleanCfg.set(clean, clean.length);
    const branch = cache.clone();
    try {
      model.pushClean(branch, cleanCfg, rep(first, 4), 6);
      expect(branch.length).toBe(10);
      expectCache(branch, a.kv_cache_after_clean, 'ar.kv_cache_after_clean');
      for (const key of ['step2_rest10_t500', 'step2_rest10_t5']) {
        const c = a[key];
        const out = model.forwardInference(f32(a.xn_rest), c.t, branch, rep(rest, 2), 10, c.cfg_scale, c.cfg_interval);
        expect(record(`ar.${key}.eps_cond`, maxAbsDiff(out.epsCond, c.eps_cond.data))).toBeLessThan(TOL);
        expect(record(`ar.${key}.eps_uncond`, maxAbsDiff(out.epsUncond!, c.eps_uncond.data))).toBeLessThan(TOL);
        expect(record(`ar.${key}.output`, maxAbsDiff(out.eps, c.output.data))).toBeLessThan(TOL);
      }
    } finally {
      branch.dispose();
    }
    // the original cache was not touched by the branch
    expect(cache.length).toBe(4);
  });

  it('rejects bad inputs with a message that names the problem', () => {
    expect(() => model.createCache([3, 11])).toThrow('label 11 at index 1 is not a class of this model; use 0..10 (10 = the null class)');
    expect(() => model.forwardInference(new Float32Array(10), 5, cache, raster(2, 16), 16, 4)).toThrow(
      'noised has 10 values, expected 128 ([N=2, tokens=16, tokenDim=4] for a cache of 4 rows)',
    );
    expect(() => model.predictEps(cache, new Float32Array(4 * 4), [0, 1, 2, 16], 1, 5)).toThrow(
      'tokens positions: entry 3 is 16; positions are raster indices 0..15',
    );
    expect(() => model.forwardInference(f32(ref.xn), 5, cache, raster(2, 16), 16, 0.5)).toThrow('cfgScale 0.5 is below 1');
  });
});
