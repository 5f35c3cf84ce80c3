/**
 * The KV-cache path (TransformerDenoiser sessions) gives the same eps as the training forward with the
 * matching split and order: AR step k's noised tokens see the cond tokens and the clean tokens of the
 * earlier steps, nothing else.
 */
import { initBackend } from '@causalfusion/backend';
import { createRng } from '@causalfusion/rng';
import { makeConfig } from '@causalfusion/config';
import { loadModel } from './checkpoint';
import { TransformerDenoiser } from './denoiser';
import { CausalDiffusionModel } from './model';
import { unpatchify } from '@causalfusion/config';
import { maxAbsDiff, readReference, refConfig, WEIGHTS } from './reference.test-util';

let model: CausalDiffusionModel;
const ref = readReference('inference.json');

beforeAll(async () => {
  await initBackend({ backend: 'wasm', quiet: true });
  model = await loadModel(WEIGHTS, { config: refConfig(ref) });
});
afterAll(() => model.dispose());

it('three AR steps through a session equal the training forward with splits [3, 5, 8] and the same order', async () => {
  const L = 16;
  const d = 4;
  const rng = createRng('kv');
  const order = rng.permutation(L);
  const splits = [3, 5, 8];
  const N = 2;
  const clean = Float32Array.from(rng.normalArray(N * L * d)); // raster tokens
  const noised = Float32Array.from(rng.normalArray(N * L * d));
  const t = 321;

  const out = model.trainingForward(
    { x: unpatchify(clean, N, 4, 4, 1), xn: unpatchify(noised, N, 4, 4, 1), noise: new Float32Array(N * L * d), t: [t, t], y: [3, 7], splitSizes: splits },
    { idsShuffle: [...order, ...order], labelDropRand: [1, 1] },
    { intermediates: true },
  );
  const expected = out.intermediates!.pred_noise_shuffled.dataSync(); // [N, L, d] in `order`
  out.loss.dispose();
  Object.values(out.intermediates!).forEach((v) => v.dispose());

  const session = await new TransformerDenoiser(model).start([3, 7]);
  let start = 0;
  for (const n of splits) {
    const ids = order.subarray(start, start + n);
    const positions = Int32Array.from({ length: N * n }, (_, i) => ids[i % n]);
    const gather = (src: Float32Array) => {
      const outArr = new Float32Array(N * n * d);
      for (let b = 0; b < N; b++) for (let j = 0; j < n; j++) outArr.set(src.subarray((b * L + ids[j]) * d, (b * L + ids[j] + 1) * d), (b * n + j) * d);
      return outArr;
    };
    const eps = await session.predictEps(gather(noised), positions, n, t);
    const want = new Float32Array(N * n * d);
    for (let b = 0; b < N; b++) want.set(expected.subarray((b * L + start) * d, (b * L + start + n) * d), b * n * d);
    expect(maxAbsDiff(eps, want)).toBeLessThan(1e-4);
    await session.pushClean(gather(clean), positions, n);
    start += n;
  }
  session.dispose!();
});

it('maps null to the null class, and refuses null when the model has none', async () => {
  const denoiser = new TransformerDenoiser(model);
  const a = await denoiser.start([null]);
  const b = await denoiser.start([10]);
  const x = new Float32Array(16 * 4).fill(0.5);
  const pos = Int32Array.from({ length: 16 }, (_, i) => i);
  expect(Array.from(await a.predictEps(x, pos, 16, 100))).toEqual(Array.from(await b.predictEps(x, pos, 16, 100)));
  a.dispose!();
  b.dispose!();

  const noNull = new CausalDiffusionModel(makeConfig('CausalFusion-Tiny', { classDropoutProb: 0 }));
  try {
    expect(() => new TransformerDenoiser(noNull).start([1, null])).toThrow('condition 1 is null (unconditional) but this model has no null class');
    expect(() => new TransformerDenoiser(noNull).start([10])).toThrow(
      'label 10 at index 0 is not a class of this model; use 0..9 (this model has no null class',
    );
  } finally {
    noNull.dispose();
  }
});
