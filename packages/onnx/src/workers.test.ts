/**
 * The batch rows split over worker_threads (one ORT engine each) give what one engine on this thread
 * gives: eps, the KV cache after pushes, and a whole AR sampling run with the same seed.
 */
import { readSafetensors } from '@causalfusion/safetensors';
import { createDiffusion } from '@causalfusion/diffusion';
import { sample } from '@causalfusion/sampler';
import { buildOnnxGraphs } from './graph';
import { OrtDenoiser } from './denoiser';
import { maxAbsDiff, readReference, refConfig, WEIGHTS } from './reference.test-util';

const config = refConfig(readReference('inference.json'));
const graphs = buildOnnxGraphs(config, readSafetensors(WEIGHTS).tensors);
let here: OrtDenoiser;
let sharded: OrtDenoiser;

beforeAll(async () => {
  here = await OrtDenoiser.fromGraphs(graphs, { threads: 1 });
  sharded = await OrtDenoiser.fromGraphs(graphs, { threads: 3 });
});
afterAll(async () => {
  await here.release();
  await sharded.release();
});

const values = (n: number, seed: number) => Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.37 + seed));

describe('OrtDenoiser over worker_threads', () => {
  it('defaults to one single-threaded engine per thread on the CPU, one engine here with workers: 1', async () => {
    expect(sharded.workers).toBe(3);
    expect(here.workers).toBe(1);
    await expect(OrtDenoiser.fromGraphs(graphs, { workers: 0 })).rejects.toThrow('workers must be a positive integer, got 0');
  });

  it.each([1, 2, 5, 7])('%i rows: eps and the cache match one engine (rows split 3 ways where there are enough)', async (R) => {
    const conditions = Array.from({ length: R }, (_, i) => (i % 3 === 2 ? null : i % 10));
    const a = await here.start(conditions);
    const b = await sharded.start(conditions);
    try {
      const d = here.tokenDim;
      const positions = (n: number, from: number) => Int32Array.from({ length: R * n }, (_, i) => from + (i % n));
      const clean = values(R * 3 * d, 1);
      await a.pushClean(clean, positions(3, 0), 3);
      await b.pushClean(clean, positions(3, 0), 3);
      expect(b.length).toBe(a.length);
      const [ka, kb] = [await a.kvCache(), await b.kvCache()];
      ka.forEach((l, i) => {
        expect(kb[i].shape).toEqual(l.shape);
        expect(maxAbsDiff(kb[i].k, l.k)).toBeLessThan(1e-6);
        expect(maxAbsDiff(kb[i].v, l.v)).toBeLessThan(1e-6);
      });
      const noised = values(R * 2 * d, 2);
      const ea = await a.predictEps(noised, positions(2, 3), 2, 417);
      const eb = await b.predictEps(noised, positions(2, 3), 2, 417);
      expect(eb.length).toBe(R * 2 * d);
      expect(maxAbsDiff(ea, eb)).toBeLessThan(1e-6);
      expect(noised).toEqual(values(R * 2 * d, 2)); // the caller's arrays are untouched
    } finally {
      a.dispose();
      b.dispose();
    }
  });

  it('a 4-AR-step sampling run with CFG gives the same tokens', async () => {
    const options = { conditions: [1, 4, 7, 9, 2], arSteps: 4, order: 'random' as const, cfgScale: 3, diffusion: createDiffusion({ respacing: '8' }), seed: 9 };
    const a = await sample(here, options);
    const b = await sample(sharded, options);
    expect(b.stats).toEqual(a.stats);
    expect(maxAbsDiff(a.tokens, b.tokens)).toBeLessThan(1e-5);
  });

  it('bad input is refused before it reaches a worker, and a disposed session says so', async () => {
    const s = await sharded.start([3, 7, null, null]);
    await expect(
      s.predictEps(
        new Float32Array(10),
        Int32Array.from({ length: 4 }, () => 0),
        1,
        5,
      ),
    ).rejects.toThrow('noised has 10 values, expected 16');
    await expect(sharded.start([3, 11])).rejects.toThrow('condition 1: label 11 is not a class of this model');
    s.dispose();
    await expect(s.predictEps(new Float32Array(16), new Int32Array(4), 1, 5)).rejects.toThrow('the denoiser session was disposed');
  });
});
