/**
 * Every gradient rule of GradGraph against central finite differences: a tiny graph per op, the scalar
 * sum(op(inputs) * R) for a fixed random R, its analytic gradients from one onnxruntime run, and the
 * numeric ones from runs with each input value nudged by +-h.
 */
import { createRng } from '@causalfusion/rng';
import { GradGraph } from './autodiff';
import { FLOAT, INT64, valueInfo } from './graph';

const ort = require('onnxruntime-node') as typeof import('onnxruntime-node');

interface Input {
  name: string;
  dims: number[];
  /** Differentiable (a parameter); default true for float inputs. */
  param?: boolean;
  int?: number[];
  /** Values (default: standard normal draws). */
  values?: number[];
}

/**
 * Build sum(f(inputs) * R), return the max |analytic - numeric| gradient error relative to the largest
 * numeric gradient of each input.
 */
async function checkGradients(
  inputs: Input[],
  f: (gg: GradGraph, names: Record<string, string>) => string,
  outDims: number[],
  seed = 1,
): Promise<Record<string, number>> {
  const rng = createRng(seed);
  const gg = new GradGraph();
  const names: Record<string, string> = {};
  for (const i of inputs) names[i.name] = i.int || i.param === false ? i.name : gg.param(i.name);
  const out = f(gg, names);
  const rSize = outDims.reduce((a, b) => a * b, 1);
  const R = Array.from({ length: rSize }, () => rng.normal());
  const projected = gg.weightedSum(out, gg.g.constant('R', R, 'float', outDims));
  const params = inputs.filter((i) => !i.int && i.param !== false).map((i) => i.name);
  const grads = gg.gradients(projected, params);
  const outputs = [valueInfo(projected, FLOAT, [])];
  const gradNames: string[] = [];
  for (const p of params) {
    const g = grads.get(p);
    if (!g) throw new Error(`no gradient for ${p}`);
    const name = `grad_${p}`;
    gg.g.op('Identity', [g], [], name);
    gradNames.push(name);
    outputs.push(valueInfo(name, FLOAT, null));
  }
  const model = gg.g.finish(
    'test',
    inputs.map((i) => valueInfo(i.name, i.int ? INT64 : FLOAT, i.dims)),
    outputs,
    true,
  );
  const session = await ort.InferenceSession.create(model, { intraOpNumThreads: 1, graphOptimizationLevel: 'disabled' });
  const values = new Map<string, Float32Array | BigInt64Array>();
  for (const i of inputs) {
    const n = i.dims.reduce((a, b) => a * b, 1);
    if (i.int)
      values.set(
        i.name,
        BigInt64Array.from(i.int, (v) => BigInt(v)),
      );
    else values.set(i.name, Float32Array.from(i.values ?? Array.from({ length: n }, () => rng.normal())));
  }
  const feeds = () => Object.fromEntries(inputs.map((i) => [i.name, new ort.Tensor(i.int ? 'int64' : 'float32', values.get(i.name)!, i.dims)]));
  const base = await session.run(feeds());
  const errors: Record<string, number> = {};
  const h = 1e-2;
  for (const p of params) {
    const analytic = base[`grad_${p}`].data as Float32Array;
    const v = values.get(p) as Float32Array;
    let maxErr = 0;
    let maxNum = 0;
    for (let j = 0; j < v.length; j++) {
      const keep = v[j];
      v[j] = keep + h;
      const plus = (await session.run(feeds()))[projected].data[0] as number;
      v[j] = keep - h;
      const minus = (await session.run(feeds()))[projected].data[0] as number;
      v[j] = keep;
      const numeric = (plus - minus) / (2 * h);
      maxErr = Math.max(maxErr, Math.abs(numeric - analytic[j]));
      maxNum = Math.max(maxNum, Math.abs(numeric));
    }
    errors[p] = maxErr / Math.max(maxNum, 1e-3);
  }
  await session.release();
  return errors;
}

const TOL = 5e-3;
function expectSmall(errors: Record<string, number>): void {
  for (const [name, e] of Object.entries(errors)) {
    if (!(e < TOL)) throw new Error(`gradient of ${name}: relative error ${e}`);
  }
}

describe('GradGraph gradients match finite differences', () => {
  it('linear (Gemm), with and without bias', async () => {
    expectSmall(
      await checkGradients(
        [
          { name: 'x', dims: [3, 4] },
          { name: 'w', dims: [4, 5] },
          { name: 'b', dims: [5] },
        ],
        (gg, n) => gg.linear(n.x, n.w, n.b),
        [3, 5],
      ),
    );
    expectSmall(
      await checkGradients(
        [
          { name: 'x', dims: [3, 4] },
          { name: 'w', dims: [4, 2] },
        ],
        (gg, n) => gg.linear(n.x, n.w, null),
        [3, 2],
      ),
    );
  });

  it('batched matmul, plain and with B transposed', async () => {
    expectSmall(
      await checkGradients(
        [
          { name: 'a', dims: [2, 2, 3, 4] },
          { name: 'b', dims: [2, 2, 4, 3] },
        ],
        (gg, n) => gg.matmul(n.a, n.b),
        [2, 2, 3, 3],
      ),
    );
    expectSmall(
      await checkGradients(
        [
          { name: 'a', dims: [2, 2, 3, 4] },
          { name: 'b', dims: [2, 2, 5, 4] },
        ],
        (gg, n) => gg.matmul(n.a, n.b, true),
        [2, 2, 3, 5],
      ),
    );
  });

  it('add, broadcast add (dropped and kept axes), scale', async () => {
    expectSmall(
      await checkGradients(
        [
          { name: 'a', dims: [2, 3] },
          { name: 'b', dims: [2, 3] },
        ],
        (gg, n) => gg.scale(gg.add(n.a, n.b), 0.7),
        [2, 3],
      ),
    );
    expectSmall(
      await checkGradients(
        [
          { name: 'x', dims: [2, 3, 4] },
          { name: 'b', dims: [3, 4] },
        ],
        (gg, n) => gg.addBroadcast(n.x, n.b, [0], false),
        [2, 3, 4],
      ),
    );
    expectSmall(
      await checkGradients(
        [
          { name: 'x', dims: [2, 3, 4] },
          { name: 'b', dims: [2, 1, 4] },
        ],
        (gg, n) => gg.addBroadcast(n.x, n.b, [1], true),
        [2, 3, 4],
      ),
    );
  });

  it('layer norm (input, weight, bias)', async () => {
    expectSmall(
      await checkGradients(
        [
          { name: 'x', dims: [4, 6] },
          { name: 'w', dims: [6] },
          { name: 'b', dims: [6] },
        ],
        (gg, n) => gg.layerNorm(n.x, n.w, n.b),
        [4, 6],
      ),
    );
  });

  it('softmax under an additive mask', async () => {
    const mask = [0, -Infinity, -Infinity, 0, 0, -Infinity, 0, 0, 0];
    expectSmall(
      await checkGradients(
        [
          { name: 'x', dims: [2, 3, 3] },
          { name: 'mask', dims: [3, 3], param: false, values: mask },
        ],
        (gg, n) => gg.softmax(n.x, n.mask),
        [2, 3, 3],
      ),
    );
  });

  it('tanh-GELU (FastGelu) and SiLU', async () => {
    expectSmall(await checkGradients([{ name: 'x', dims: [3, 5] }], (gg, n) => gg.gelu(gg.scale(n.x, 2)), [3, 5]));
    expectSmall(await checkGradients([{ name: 'x', dims: [3, 5] }], (gg, n) => gg.silu(gg.scale(n.x, 2)), [3, 5]));
  });

  it('reshape, transpose, concat and split (one part unused)', async () => {
    expectSmall(
      await checkGradients(
        [
          { name: 'a', dims: [2, 3, 4] },
          { name: 'b', dims: [2, 1, 4] },
        ],
        (gg, n) => {
          const c = gg.concat([n.a, n.b], 1); // [2, 4, 4]
          const t = gg.transpose(gg.reshape(c, [2, 2, 2, 4]), [0, 2, 1, 3]);
          const [first] = gg.split(gg.reshape(t, [2, 16]), 1, [10, 6], 2);
          return first;
        },
        [2, 10],
      ),
    );
  });

  it('gather (embedding rows, repeated ids)', async () => {
    expectSmall(
      await checkGradients(
        [
          { name: 'table', dims: [5, 3] },
          { name: 'ids', dims: [2, 3], int: [4, 0, 4, 2, 2, 1] },
        ],
        (gg, n) => gg.gather(n.table, n.ids, 5, 3),
        [2, 3, 3],
      ),
    );
  });

  it('weighted squared error and weighted cross-entropy', async () => {
    const target = { name: 'target', dims: [3, 4], param: false };
    const w = { name: 'w', dims: [3, 1], param: false, values: [2, 0.5, 1] };
    expectSmall(await checkGradients([{ name: 'p', dims: [3, 4] }, target, w], (gg, n) => gg.weightedSquaredError(n.p, n.target, n.w), []));
    const labels = { name: 'labels', dims: [3], int: [1, 3, 0] };
    const wRow = { name: 'w', dims: [3], param: false, values: [1, 0, 0.5] };
    expectSmall(await checkGradients([{ name: 'logits', dims: [3, 4] }, labels, wRow], (gg, n) => gg.weightedCrossEntropy(n.logits, n.labels, n.w, 4), []));
  });
});
