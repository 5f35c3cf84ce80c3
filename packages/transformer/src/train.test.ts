import { initBackend, tf } from '@causalfusion/backend';
import { createRng } from '@causalfusion/rng';
import { clipGradArrays, makeConfig } from '@causalfusion/config';
import { CausalDiffusionModel } from './model';
import { convBatchMatMul, geluTanh, layerNorm, matMul } from './ops';
import { AdamW, clipGradNorm, trainStep } from './train';
import { maxAbsDiff } from './reference.test-util';

beforeAll(async () => {
  await initBackend({ backend: 'wasm', quiet: true });
});

function randn(shape: number[], seed: number): tf.Tensor {
  const rng = createRng(seed);
  const n = shape.reduce((a, b) => a * b, 1);
  return tf.tensor(Float32Array.from(rng.normalArray(n)), shape);
}

describe('hand-written gradients equal tfjs autodiff of the plain formulas', () => {
  it('matMul (2-D and 3-D), LayerNorm and tanh-GELU', () => {
    tf.tidy(() => {
      const a2 = randn([5, 7], 1);
      const b2 = randn([7, 3], 2);
      const a3 = randn([4, 5, 7], 3);
      const b3 = randn([4, 7, 6], 4);
      const w = randn([7], 5);
      const bias = randn([7], 6);
      const x = tf.mul(randn([5, 7], 7), 3);
      const pairs: [string, (t: tf.Tensor[]) => tf.Tensor, (t: tf.Tensor[]) => tf.Tensor, tf.Tensor[]][] = [
        ['matMul 2-D', ([a, b]) => matMul(a, b), ([a, b]) => tf.matMul(a as tf.Tensor2D, b as tf.Tensor2D), [a2, b2]],
        ['matMul 3-D', ([a, b]) => matMul(a, b), ([a, b]) => tf.matMul(a as tf.Tensor3D, b as tf.Tensor3D), [a3, b3]],
        [
          'convBatchMatMul',
          ([a, b]) => convBatchMatMul(a, b),
          // x [I, K, B], f [K, B, J] -> per b: X_b @ F_b, laid out [I, B, J]
          ([a, b]) => tf.transpose(tf.matMul(tf.transpose(a, [2, 0, 1]) as tf.Tensor3D, tf.transpose(b, [1, 0, 2]) as tf.Tensor3D), [1, 0, 2]),
          [randn([5, 7, 4], 14), randn([7, 4, 6], 15)],
        ],
        [
          'layerNorm',
          ([v, g, c]) => layerNorm(v, g, c),
          ([v, g, c]) => {
            const m = tf.mean(v, -1, true);
            const vc = tf.sub(v, m);
            return tf.add(tf.mul(tf.div(vc, tf.sqrt(tf.add(tf.mean(tf.square(vc), -1, true), 1e-5))), g), c);
          },
          [x, w, bias],
        ],
        [
          'geluTanh',
          ([v]) => geluTanh(v),
          ([v]) => tf.mul(tf.mul(v, 0.5), tf.add(1, tf.tanh(tf.mul(Math.sqrt(2 / Math.PI), tf.add(v, tf.mul(0.044715, tf.pow(v, 3))))))),
          [x],
        ],
      ];
      for (const [name, ours, plain, inputs] of pairs) {
        const probe = randn(ours(inputs).shape, 9);
        const loss =
          (f: (t: tf.Tensor[]) => tf.Tensor) =>
          (...t: tf.Tensor[]) =>
            tf.sum(tf.mul(f(t), probe));
        const gOurs = tf.grads(loss(ours))(inputs);
        const gPlain = tf.grads(loss(plain))(inputs);
        expect(maxAbsDiff(ours(inputs).dataSync(), plain(inputs).dataSync())).toBeLessThan(1e-5);
        gOurs.forEach((g, i) => {
          const err = maxAbsDiff(g.dataSync(), gPlain[i].dataSync());
          if (!(err < 1e-4)) throw new Error(`${name}: gradient of input ${i} differs by ${err}`);
        });
      }
    });
  });

  it('matMul with a weight variable (read directly, not saved) gets the same gradients', () => {
    const w = tf.variable(randn([7, 3], 11));
    const x = randn([5, 7], 12);
    const probe = randn([5, 3], 13);
    const ours = tf.variableGrads(() => tf.sum(tf.mul(matMul(tf.mul(x, 2), w), probe)) as tf.Scalar, [w]);
    const plain = tf.variableGrads(() => tf.sum(tf.mul(tf.matMul(tf.mul(x, 2), w), probe)) as tf.Scalar, [w]);
    expect(maxAbsDiff(ours.grads[w.name].dataSync(), plain.grads[w.name].dataSync())).toBeLessThan(1e-4);
    tf.dispose([ours.value, plain.value, ...Object.values(ours.grads), ...Object.values(plain.grads), w, x, probe]);
  });
});

describe('AdamW and clipping', () => {
  it('getState / setState carry the moments to a fresh optimizer: the next step is identical', () => {
    const make = () => tf.variable(tf.tensor1d([1, -2, 0.5]));
    const a = make();
    const optA = new AdamW([a], { lr: 0.1 });
    optA.step({ [a.name]: tf.tensor1d([0.5, -1, 2]) });
    const b = tf.variable(a.clone());
    const optB = new AdamW([b], { lr: 0.1 });
    optB.setState(optA.getState());
    expect(optB.stepCount).toBe(1);
    optA.step({ [a.name]: tf.tensor1d([0.1, 0.3, -0.2]) });
    optB.step({ [b.name]: tf.tensor1d([0.1, 0.3, -0.2]) });
    expect(Array.from(b.dataSync())).toEqual(Array.from(a.dataSync()));
    expect(() => optB.setState({ stepCount: 1, m: [new Float32Array(2)], v: [new Float32Array(2)] })).toThrow(/moment 0 has 2 values/);
  });

  it('follows torch.optim.AdamW for two steps (weight decay, bias correction)', () => {
    const p = tf.variable(tf.tensor1d([1, -2]));
    const opt = new AdamW([p], { lr: 0.1, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1 });
    const grads = [
      [0.5, -1],
      [0.25, 2],
    ];
    // the same update in float64, step by step
    let w = [1, -2];
    let m = [0, 0];
    let v = [0, 0];
    grads.forEach((g, k) => {
      const step = k + 1;
      opt.step({ [p.name]: tf.tensor1d(g) });
      w = w.map((wi) => wi * (1 - 0.1 * 0.1));
      m = m.map((mi, i) => 0.9 * mi + 0.1 * g[i]);
      v = v.map((vi, i) => 0.95 * vi + 0.05 * g[i] * g[i]);
      w = w.map((wi, i) => wi - (0.1 / (1 - 0.9 ** step)) * (m[i] / (Math.sqrt(v[i]) / Math.sqrt(1 - 0.95 ** step) + 1e-8)));
    });
    expect(maxAbsDiff(p.dataSync(), w)).toBeLessThan(1e-6);
    opt.dispose();
    p.dispose();
  });

  it('clips the global norm like clip_grad_norm_', () => {
    const { grads, norm } = clipGradNorm({ a: tf.tensor1d([3, 0]), b: tf.tensor1d([0, 4]) }, 1);
    expect(norm).toBeCloseTo(5, 6);
    expect(maxAbsDiff(grads.a.dataSync(), [0.6, 0])).toBeLessThan(1e-6);
    expect(maxAbsDiff(grads.b.dataSync(), [0, 0.8])).toBeLessThan(1e-6);
    tf.dispose(grads);
  });

  it('takes gradient arrays (null = no gradient) with the same result as tensors; clipGradArrays scales in place', () => {
    const make = () => [tf.variable(tf.tensor2d([1, -2, 0.5, 3], [2, 2])), tf.variable(tf.tensor1d([0.25, -1]))];
    const [a1, b1] = make();
    const [a2, b2] = make();
    const optT = new AdamW([a1, b1], { lr: 0.05, weightDecay: 0.1 });
    const optA = new AdamW([a2, b2], { lr: 0.05, weightDecay: 0.1 });
    optT.step({ [a1.name]: tf.tensor2d([0.5, -1, 2, 0.1], [2, 2]) });
    optA.step([Float32Array.of(0.5, -1, 2, 0.1), null]);
    expect(Array.from(a2.dataSync())).toEqual(Array.from(a1.dataSync()));
    expect(Array.from(b2.dataSync())).toEqual([0.25, -1]);
    expect(() => optA.step([new Float32Array(3), null])).toThrow(/gradient 0 has 3 values/);
    expect(() => optA.step([null])).toThrow(/1 gradients for 2 variables/);

    const g = [Float32Array.of(3, 0), null, Float32Array.of(0, 4)];
    expect(clipGradArrays(g, 1)).toBeCloseTo(5, 6);
    expect(maxAbsDiff(g[0]!, [0.6, 0])).toBeLessThan(1e-6);
    expect(maxAbsDiff(g[2]!, [0, 0.8])).toBeLessThan(1e-6);
    const small = [Float32Array.of(0.3, 0.4)];
    expect(clipGradArrays(small, 1)).toBeCloseTo(0.5, 6);
    expect(Array.from(small[0])).toEqual([Math.fround(0.3), Math.fround(0.4)]);
  });
});

describe('trainStep', () => {
  const config = makeConfig('CausalFusion-Tiny', { hiddenSize: 32, numHeads: 2 });
  const batch = () => {
    const rng = createRng('data');
    const x = new Float32Array(4 * 4 * 4 * 4);
    rng.fillNormal(x);
    return { x, y: [1, 2, 3, 4] };
  };

  function run(steps: number): number[] {
    const model = new CausalDiffusionModel(config, { seed: 1 });
    const opt = new AdamW(model.trainableVariables(), { lr: 3e-3 });
    const rng = createRng(7);
    const data = batch();
    const losses: number[] = [];
    try {
      const before = tf.memory().numTensors;
      for (let i = 0; i < steps; i++) losses.push(trainStep(model, opt, data, rng, { splitSizes: [4, 12] }).loss);
      expect(tf.memory().numTensors).toBe(before); // nothing leaks per step
    } finally {
      opt.dispose();
      model.dispose();
    }
    return losses;
  }

  it('learns a fixed batch, reproducibly from the seed, without leaking tensors', () => {
    const a = run(30);
    const first = a.slice(0, 5).reduce((s, v) => s + v, 0) / 5;
    const last = a.slice(-5).reduce((s, v) => s + v, 0) / 5;
    expect(last).toBeLessThan(0.8 * first);
    expect(run(3)).toEqual(a.slice(0, 3));
  });

  it('rejects inputs with the wrong size, naming the expected layout', () => {
    const model = new CausalDiffusionModel(config);
    const opt = new AdamW(model.trainableVariables());
    try {
      expect(() => trainStep(model, opt, { x: new Float32Array(10), y: [1, 2] }, createRng(0))).toThrow('x has 10 values, expected 128 (NCHW [2, 4, 4, 4])');
      expect(() => trainStep(model, opt, { x: new Float32Array(128), y: [1, 12] }, createRng(0))).toThrow('label 12 at index 1 is not a class of this model');
    } finally {
      opt.dispose();
      model.dispose();
    }
  });
});
