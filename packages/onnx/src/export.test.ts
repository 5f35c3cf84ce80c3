/**
 * Building, exporting and loading: the graphs use standard opset-17 ops only, an exported folder loads
 * and predicts what the in-memory graphs predict, a model folder loads without tfjs, and bad folders,
 * bad weights and an unavailable CUDA give errors that say what to do.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { onnx } from 'onnx-proto';
import { readSafetensors, writeSafetensors } from '@causalfusion/safetensors';
import { configToJson, type ModelConfig } from '@causalfusion/config';
import { OrtDenoiser } from './denoiser';
import { EXTERNAL_WEIGHTS_FILE, exportOnnx, GRAPH_FILES, MANIFEST_FILE } from './export';
import { buildOnnxGraphs } from './graph';
import { readReference, refConfig, WEIGHTS } from './reference.test-util';
import type { Weights } from './weights';

const config: ModelConfig = refConfig(readReference('weights_manifest.json'));
const weights: Weights = readSafetensors(WEIGHTS).tensors;
let tmp: string;

beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'causalfusion-onnx-'));
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** A model folder as saveModel writes it: model.safetensors + config.json. */
function modelFolder(name: string, cfg: ModelConfig, w: Weights): string {
  const dir = path.join(tmp, name);
  writeSafetensors(path.join(dir, 'model.safetensors'), w, { format: 'pt' });
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(configToJson(cfg)));
  return dir;
}

/** cond rows [3, 7] then null rows; eps for all 16 tokens at t = 500 after pushing 5 clean tokens. */
async function probe(denoiser: OrtDenoiser): Promise<Float32Array> {
  const session = await denoiser.start([3, 7, null, null]);
  try {
    const positions = (ids: number[]) => Int32Array.from({ length: 4 * ids.length }, (_, i) => ids[i % ids.length]);
    const values = (n: number) => Float32Array.from({ length: 4 * n * 4 }, (_, i) => Math.sin(i * 0.37));
    await session.pushClean(values(5), positions([0, 5, 10, 15, 3]), 5);
    return await session.predictEps(values(11), positions([1, 2, 4, 6, 7, 8, 9, 11, 12, 13, 14]), 11, 500);
  } finally {
    session.dispose();
  }
}

describe('graphs', () => {
  it('use standard opset-17 ops, with the official names for the weights', () => {
    const graphs = buildOnnxGraphs(config, weights);
    const standard = new Set([
      'MatMul',
      'Add',
      'Mul',
      'LayerNormalization',
      'Softmax',
      'Gather',
      'Concat',
      'Reshape',
      'Transpose',
      'Sigmoid',
      'Split',
      'Unsqueeze',
      'Sin',
      'Cos',
      'Identity',
      'Tanh',
      'Shape',
    ]);
    for (const name of ['cond', 'push', 'eps'] as const) {
      const model = onnx.ModelProto.decode(graphs[name]);
      expect(model.opsetImport.map((o) => [o.domain, Number(o.version)])).toEqual([['', 17]]);
      const graph = model.graph as onnx.GraphProto;
      for (const node of graph.node) expect(standard).toContain(node.opType);
      expect(graph.initializer.map((t) => t.name)).toContain('blocks.1.attn.qkv.weight.T');
    }
  });

  it('the eps graph takes positions [rows, n] or [n], and one timestep or one per row', async () => {
    const ort = await import('onnxruntime-node');
    const graphs = buildOnnxGraphs(config, weights);
    const denoiser = await OrtDenoiser.fromGraphs(graphs, { threads: 1 });
    const session = await denoiser.start([3, null]);
    const eps = await ort.InferenceSession.create(graphs.eps);
    try {
      const past: Record<string, import('onnxruntime-node').Tensor> = {};
      (await session.kvCache()).forEach((l, i) => {
        past[`past_key.${i}`] = new ort.Tensor('float32', l.k, l.shape);
        past[`past_value.${i}`] = new ort.Tensor('float32', l.v, l.shape);
      });
      const noised = new ort.Tensor(
        'float32',
        Float32Array.from({ length: 2 * 3 * 4 }, (_, i) => Math.cos(i)),
        [2, 3, 4],
      );
      const run = async (positions: number[], dims: number[], t: number[]) =>
        (
          await eps.run({
            noised,
            positions: new ort.Tensor('int64', BigInt64Array.from(positions, BigInt), dims),
            timestep: new ort.Tensor('float32', Float32Array.from(t), [t.length]),
            ...past,
          })
        ).eps.data as Float32Array;
      const full = await run([4, 9, 2, 4, 9, 2], [2, 3], [250]);
      expect(Array.from(await run([4, 9, 2], [3], [250]))).toEqual(Array.from(full));
      expect(Array.from(await run([4, 9, 2, 4, 9, 2], [2, 3], [250, 250]))).toEqual(Array.from(full));
      // and the denoiser's own call gives the same eps
      expect(Array.from(await session.predictEps(noised.data as Float32Array, Int32Array.from([4, 9, 2, 4, 9, 2]), 3, 250))).toEqual(Array.from(full));
    } finally {
      session.dispose();
      await eps.release();
      await denoiser.release();
    }
  });

  it('reject weights that do not match the config, listing what is wrong', () => {
    const broken = new Map(weights);
    broken.delete('blocks.1.mlp.fc2.bias');
    broken.set('extra', { shape: [1], data: new Float32Array(1) });
    expect(() => buildOnnxGraphs({ ...config, depth: 3 }, weights)).toThrow(/missing keys \(15\): blocks\.2\.norm1\.weight/);
    expect(() => buildOnnxGraphs(config, broken)).toThrow(/missing keys \(1\): blocks\.1\.mlp\.fc2\.bias\n {2}unexpected keys \(1\): extra/);
    expect(() => buildOnnxGraphs({ ...config, hiddenSize: 32 }, weights)).toThrow(/shape mismatches .*pos_embed: checkpoint \[1,16,64\], model \[1,16,32\]/);
  });
});

describe('export and load', () => {
  let inMemory: Float32Array;

  beforeAll(async () => {
    const denoiser = await OrtDenoiser.fromWeights(config, weights, { threads: 1 });
    inMemory = await probe(denoiser);
    await denoiser.release();
  });

  it('exportOnnx writes cond/push/eps.onnx, one shared weights file and the manifest; the folder loads', async () => {
    const out = path.join(tmp, 'exported');
    const manifest = exportOnnx(modelFolder('model', config, weights), out);
    expect(fs.readdirSync(out).sort()).toEqual([MANIFEST_FILE, GRAPH_FILES.cond, GRAPH_FILES.eps, GRAPH_FILES.push, EXTERNAL_WEIGHTS_FILE].sort());
    expect(manifest).toMatchObject({ format: 'causalfusion-onnx', version: 1, opset: 17, numTokens: 16, tokenDim: 4, nullClass: 10 });
    expect(manifest.graphs.eps.inputs.slice(0, 4)).toEqual(['noised', 'positions', 'timestep', 'past_key.0']);
    expect(JSON.parse(fs.readFileSync(path.join(out, MANIFEST_FILE), 'utf8'))).toEqual(manifest);
    // the weights are stored once, outside the graphs
    expect(fs.statSync(path.join(out, GRAPH_FILES.eps)).size).toBeLessThan(50_000);

    const loaded = await OrtDenoiser.load(out, { threads: 1 });
    try {
      expect(loaded.config).toEqual(config);
      expect(Array.from(await probe(loaded))).toEqual(Array.from(inMemory));
    } finally {
      await loaded.release();
    }
  });

  it('OrtDenoiser.load builds the graphs from a model folder', async () => {
    const loaded = await OrtDenoiser.load(modelFolder('model2', config, weights), { threads: 1 });
    try {
      expect(Array.from(await probe(loaded))).toEqual(Array.from(inMemory));
    } finally {
      await loaded.release();
    }
  });

  it('a bad folder gives an error that says what a folder should hold', async () => {
    await expect(OrtDenoiser.load(path.join(tmp, 'nope'))).rejects.toThrow(
      /nope does not exist; give an exported ONNX folder \(causalfusion-onnx\.json\) or a model folder/,
    );
    fs.mkdirSync(path.join(tmp, 'empty'));
    await expect(OrtDenoiser.load(path.join(tmp, 'empty'))).rejects.toThrow(
      /empty is neither an exported ONNX folder \(no causalfusion-onnx\.json\) nor a model folder \(no model\.safetensors\)/,
    );
    const wrong = modelFolder('wrong-config', { ...config, depth: 3 }, weights);
    await expect(OrtDenoiser.load(wrong)).rejects.toThrow(/does not match the model config[\s\S]*missing keys \(15\)/);
    expect(() => exportOnnx(path.join(tmp, 'empty'), path.join(tmp, 'out'))).toThrow(/has no model\.safetensors/);
    const stale = path.join(tmp, 'stale');
    fs.mkdirSync(stale);
    fs.writeFileSync(path.join(stale, MANIFEST_FILE), JSON.stringify({ format: 'causalfusion-onnx', version: 99 }));
    await expect(OrtDenoiser.load(stale)).rejects.toThrow(/format version 99, this @causalfusion\/onnx reads version 1; export the model again/);
  });

  it('a model without label dropout has no null rows', async () => {
    const table = weights.get('y_embedder.embedding_table.weight')!;
    const noNull = new Map(weights);
    noNull.set('y_embedder.embedding_table.weight', { shape: [10, table.shape[1]], data: table.data.slice(0, 10 * table.shape[1]) });
    const denoiser = await OrtDenoiser.fromWeights({ ...config, classDropoutProb: 0 }, noNull, { threads: 1 });
    try {
      await expect(denoiser.start([3, null])).rejects.toThrow(
        'condition 1 is null (unconditional) but this model has no null class (classDropoutProb is 0); use cfgScale 1',
      );
      await expect(denoiser.start([10])).rejects.toThrow('label 10 is not a class of this model; use 0..9 (this model has no null class');
      (await denoiser.start([9])).dispose();
    } finally {
      await denoiser.release();
    }
  });

  it("device 'cuda' either runs or says that this onnxruntime-node has no CUDA and that --device cpu works", async () => {
    let denoiser: OrtDenoiser | null = null;
    try {
      denoiser = await OrtDenoiser.fromWeights(config, weights, { device: 'cuda' });
    } catch (err) {
      expect((err as Error).message).toMatch(
        /(no CUDA execution provider|cannot use CUDA here)[\s\S]*libonnxruntime_providers_(shared|cuda)\.so[\s\S]*Use --device cpu/,
      );
    }
    if (denoiser) {
      const eps = await probe(denoiser);
      await denoiser.release();
      let worst = 0;
      for (let i = 0; i < eps.length; i++) worst = Math.max(worst, Math.abs(eps[i] - inMemory[i]));
      expect(worst).toBeLessThan(1e-4);
    }
  });
});
