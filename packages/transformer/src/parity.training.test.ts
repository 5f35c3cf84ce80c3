/**
 * Parity with the official training forward (training_forward.json): every intermediate, the loss
 * and its means, for the main case (split [5,6,5]) and the extra cases (split [16], split [1]*16),
 * and the official `training_losses` (q_sample then forward). wasm backend, recorded random draws.
 */
import { createDiffusion } from '@causalfusion/diffusion';
import { getArWeights, getAttnMask } from '@causalfusion/sampler';
import { initBackend, tf } from '@causalfusion/backend';
import { loadModel } from './checkpoint';
import { get2dSincosPosEmbed } from '@causalfusion/config';
import type { CausalDiffusionModel } from './model';
import { trainingLosses } from './train';
import { f32, maxAbsDiff, printMeasured, readReference, record, refConfig, WEIGHTS } from './reference.test-util';

const ACT_TOL = 1e-4;

let model: CausalDiffusionModel;
const ref = readReference('training_forward.json');

beforeAll(async () => {
  await initBackend({ backend: 'wasm', quiet: true });
  model = await loadModel(WEIGHTS, { config: refConfig(ref) });
});
afterAll(() => {
  model.dispose();
  printMeasured('training_forward.json max abs errors');
});

function relErr(a: number, b: number): number {
  return Math.abs(a - b) / Math.abs(b);
}

const cases: [string, any][] = [['main', ref.main], ...Object.entries(ref.extra_cases as Record<string, any>)];

describe.each(cases)('training forward, case %s', (name, c) => {
  it('builds the official mask, AR weights and shuffle, and matches every recorded activation and the loss', () => {
    const L = model.numTokens;
    // the mask and the AR weights of train.py (from @causalfusion/sampler)
    const mask = getAttnMask(L, model.config.numCondTokens, c.split_sizes);
    expect(Array.from(mask)).toEqual(c.attn_mask.data.map((b: boolean) => (b ? 1 : 0)));
    const w = getArWeights(c.split_sizes);
    expect(Array.from(w)).toEqual(c.ar_weights_linear_2_1.data);

    // argsort of the recorded torch.rand values = the recorded ids_shuffle
    const rand: number[] = c.torch_rand_calls.shuffle_rand.data;
    const ids: number[] = [];
    for (let n = 0; n < 2; n++) {
      const row = rand.slice(n * L, (n + 1) * L);
      ids.push(
        ...row
          .map((v, i) => [v, i])
          .sort((a, b) => a[0] - b[0])
          .map((p) => p[1]),
      );
    }
    expect(ids).toEqual(c.ids_shuffle.data);

    const out = model.trainingForward(
      { x: f32(c.x), xn: f32(c.xn), noise: f32(c.noise), t: c.t.data, y: c.y.data, splitSizes: c.split_sizes },
      { idsShuffle: ids, labelDropRand: c.torch_rand_calls.label_drop_rand.data },
      { intermediates: true },
    );
    try {
      expect(Array.from(out.effectiveLabels)).toEqual(c.effective_labels.data);
      const inter = out.intermediates!;
      for (const key of ['t_embed', 'y_embed_raw', 'sequence_into_block0', 'block0_out', 'block1_out', 'final_hidden_noised_tokens', 'pred_noise_shuffled']) {
        const got = inter[key];
        expect(got.shape).toEqual(c.intermediates[key].shape);
        const err = record(`${name}.${key}`, maxAbsDiff(got.dataSync(), c.intermediates[key].data));
        expect(err).toBeLessThan(ACT_TOL);
      }
      expect(out.loss.shape).toEqual(c.loss.shape);
      const loss = Float32Array.from(out.loss.dataSync());
      expect(record(`${name}.loss`, maxAbsDiff(loss, c.loss.data))).toBeLessThan(ACT_TOL);
      const mean = loss.reduce((a: number, b: number) => a + b, 0) / loss.length;
      expect(record(`${name}.loss_mean (rel)`, relErr(mean, c.loss_mean))).toBeLessThan(1e-4);
      let weighted = 0;
      const d = model.tokenDim;
      for (let i = 0; i < loss.length; i++) weighted += loss[i] * w[Math.floor(i / d) % L];
      weighted /= loss.length;
      expect(record(`${name}.loss_ar_weighted_mean (rel)`, relErr(weighted, c.loss_ar_weighted_mean))).toBeLessThan(1e-4);
    } finally {
      out.loss.dispose();
      tf.dispose(out.intermediates);
    }
  });
});

describe('training_losses', () => {
  it('q_sample with float64 coefficients and the forward match the official training_losses', () => {
    const c = ref.main;
    const tl = ref.training_losses;
    const diffusion = createDiffusion({ respacing: '' });
    const out = trainingLosses(
      model,
      diffusion,
      { x: f32(c.x), t: c.t.data, y: c.y.data, noise: f32(c.noise), splitSizes: c.split_sizes },
      { idsShuffle: c.ids_shuffle.data, labelDropRand: c.torch_rand_calls.label_drop_rand.data },
    );
    try {
      expect(record('training_losses.x_t', maxAbsDiff(out.xt, tl.x_t.data))).toBeLessThanOrEqual(1e-6);
      const loss = Float32Array.from(out.loss.dataSync());
      expect(record('training_losses.loss', maxAbsDiff(loss, tl.loss.data))).toBeLessThan(ACT_TOL);
      const mean = loss.reduce((a: number, b: number) => a + b, 0) / loss.length;
      expect(record('training_losses.loss_unweighted_mean (rel)', relErr(mean, tl.loss_unweighted_mean))).toBeLessThan(1e-4);
      const w = getArWeights(c.split_sizes);
      let weighted = 0;
      for (let i = 0; i < loss.length; i++) weighted += loss[i] * w[Math.floor(i / model.tokenDim) % model.numTokens];
      weighted /= loss.length;
      expect(record('training_losses.loss_ar_weighted_mean (rel)', relErr(weighted, tl.loss_ar_weighted_mean))).toBeLessThan(1e-4);
    } finally {
      out.loss.dispose();
    }
  });
});

describe('fixed embeddings', () => {
  it('get2dSincosPosEmbed reproduces the official sin-cos init', () => {
    const init = readReference('default_init_reference.json');
    const ours = get2dSincosPosEmbed(64, 4);
    expect(record('pos_embed_sincos', maxAbsDiff(ours, init.pos_embed_sincos.data))).toBeLessThanOrEqual(1e-7);
  });

  it('the label dropout draw drops labels whose uniform is below class_dropout_prob, as the official token_drop', () => {
    const c = ref.main;
    const out = model.trainingForward(
      { x: f32(c.x), xn: f32(c.xn), noise: f32(c.noise), t: c.t.data, y: [3, 4], splitSizes: c.split_sizes },
      { idsShuffle: c.ids_shuffle.data, labelDropRand: [0.05, 0.5] },
    );
    out.loss.dispose();
    expect(Array.from(out.effectiveLabels)).toEqual([10, 4]);
  });
});
