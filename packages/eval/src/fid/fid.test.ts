import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as vm from 'node:vm';
import sharp from 'sharp';
import { onnx } from 'onnx-proto';
import { computeFid, computeStatistics } from './fid';
import { createInceptionExtractor } from './inception';
import { preprocessInception } from './preprocess';
import { statisticsOf } from './statistics';
import { frechetDistance } from './frechet';
import { InceptionScoreAccumulator } from './inception-score';
import { readNpz, saveStatsNpz, statsFromNpzArrays } from './npz';

// onnxruntime-node returns typed arrays of Node's main realm; jest's realm has its own constructors.
for (const name of ['Float32Array', 'Float64Array', 'Int32Array', 'Uint8Array', 'BigInt64Array']) {
  (globalThis as Record<string, unknown>)[name] = vm.runInThisContext(name);
}

const W = [0.5, -1, 2, 0, 1, 0.25, -0.5, 3, -2, 1, 1, -1]; // 3 x 4 "classifier"

/**
 * A stand-in for the exported Inception graph with the same interface: input [N, 3, 299, 299] ->
 * pool3 = GlobalAveragePool + Flatten [N, 3], logits = pool3 @ W [N, 4].
 */
function tinyInceptionOnnx(file: string): void {
  const FLOAT = onnx.TensorProto.DataType.FLOAT;
  const info = (name: string, dims: (number | string)[]) =>
    onnx.ValueInfoProto.create({
      name,
      type: { tensorType: { elemType: FLOAT, shape: { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) } } },
    });
  const graph = onnx.GraphProto.create({
    name: 'tiny_inception',
    node: [
      onnx.NodeProto.create({ opType: 'GlobalAveragePool', input: ['input'], output: ['gap'] }),
      onnx.NodeProto.create({
        opType: 'Flatten',
        input: ['gap'],
        output: ['pool3'],
        attribute: [{ name: 'axis', type: onnx.AttributeProto.AttributeType.INT, i: 1 }],
      }),
      onnx.NodeProto.create({ opType: 'MatMul', input: ['pool3', 'W'], output: ['logits'] }),
    ],
    initializer: [onnx.TensorProto.create({ name: 'W', dims: [3, 4], dataType: FLOAT, floatData: W })],
    input: [info('input', ['N', 3, 299, 299])],
    output: [info('pool3', ['N', 3]), info('logits', ['N', 4])],
  });
  const model = onnx.ModelProto.create({ irVersion: 8, opsetImport: [{ domain: '', version: 17 }], graph });
  fs.writeFileSync(file, onnx.ModelProto.encode(model).finish());
}

/** Deterministic test images: RGB of varying sizes, plus a grayscale one. */
function image(seed: number, width: number, height: number): Uint8Array {
  const data = new Uint8Array(width * height * 3);
  for (let i = 0; i < data.length; i++) data[i] = (i * 37 + seed * 101 + ((i * seed) % 13) * 7) & 255;
  return data;
}

let tmp: string;
let model: string;
const realDir = () => path.join(tmp, 'real');
const fakeDir = () => path.join(tmp, 'fake');

beforeAll(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'fid-'));
  model = path.join(tmp, 'tiny-inception.onnx');
  tinyInceptionOnnx(model);
  for (const dir of [realDir(), fakeDir()]) fs.mkdirSync(dir);
  for (let i = 0; i < 7; i++) {
    const [w, h] = [16 + i * 5, 12 + i * 3];
    await sharp(Buffer.from(image(i, w, h)), { raw: { width: w, height: h, channels: 3 } })
      .png()
      .toFile(path.join(realDir(), `${i}.png`));
    await sharp(Buffer.from(image(i + 50, h, w)), { raw: { width: h, height: w, channels: 3 } })
      .png()
      .toFile(path.join(fakeDir(), `${i}.png`));
  }
  const gray = new Uint8Array(28 * 28).map((_, i) => (i * 11) & 255);
  await sharp(Buffer.from(gray), { raw: { width: 28, height: 28, channels: 1 } })
    .png()
    .toFile(path.join(fakeDir(), 'gray.png'));
});

afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** Expected features computed without onnxruntime or sharp: preprocess + per-channel mean. */
function expectedFeatures(images: { width: number; height: number; data: Uint8Array }[]): { features: Float64Array; logits: Float64Array } {
  const features = new Float64Array(images.length * 3);
  const logits = new Float64Array(images.length * 4);
  images.forEach((img, n) => {
    const x = preprocessInception(img);
    const plane = 299 * 299;
    for (let c = 0; c < 3; c++) {
      let s = 0;
      for (let p = 0; p < plane; p++) s += x[c * plane + p];
      features[n * 3 + c] = s / plane;
    }
    for (let k = 0; k < 4; k++) for (let c = 0; c < 3; c++) logits[n * 4 + k] += features[n * 3 + c] * W[c * 4 + k];
  });
  return { features, logits };
}

describe('FID pipeline: PNG folder -> decode -> preprocess -> onnxruntime -> statistics -> FID', () => {
  test('matches the same computation done by hand, with Inception Score', async () => {
    const extractor = await createInceptionExtractor(model, { batchSize: 3 });
    expect(extractor.dim).toBe(3);
    const progress: number[] = [];
    const result = await computeFid(realDir(), fakeDir(), { extractor, onProgress: (done, _total, which) => progress.push(which === 'real' ? done : -done) });
    await extractor.dispose?.();
    expect(progress).toEqual([3, 6, 7, -3, -6, -8]);

    const realImages = Array.from({ length: 7 }, (_, i) => ({ width: 16 + i * 5, height: 12 + i * 3, data: image(i, 16 + i * 5, 12 + i * 3) }));
    const grayRgb = new Uint8Array(28 * 28 * 3).map((_, i) => (Math.floor(i / 3) * 11) & 255);
    // folder order is sorted by name: 0.png .. 6.png, gray.png
    const fakeImages = [
      ...Array.from({ length: 7 }, (_, i) => ({ width: 12 + i * 3, height: 16 + i * 5, data: image(i + 50, 12 + i * 3, 16 + i * 5) })),
      { width: 28, height: 28, data: grayRgb },
    ];
    const er = expectedFeatures(realImages);
    const ef = expectedFeatures(fakeImages);
    const want = await frechetDistance(await statisticsOf(er.features, 3), await statisticsOf(ef.features, 3));
    // float32 network arithmetic vs float64 here: agree to ~1e-6 relative
    expect(Math.abs(result.distance - want.distance)).toBeLessThan(1e-4 * want.distance);
    expect(result.distance).toBeGreaterThan(0);

    const is = new InceptionScoreAccumulator(4);
    is.add(er.logits);
    expect(result.real.inceptionScore).toBeCloseTo(is.score(), 5);
    expect(result.real.count).toBe(7);
    expect(result.fake.count).toBe(8);
  });

  test('saved statistics give the same FID; stats vs folder; dimension mismatch is named', async () => {
    const extractor = await createInceptionExtractor(model);
    const real = await computeStatistics(realDir(), { extractor });
    const statsFile = path.join(tmp, 'real.npz');
    saveStatsNpz(statsFile, real.stats);
    expect(statsFromNpzArrays(readNpz(statsFile), statsFile)!.dim).toBe(3);
    const a = await computeFid(realDir(), fakeDir(), { extractor });
    const b = await computeFid(statsFile, fakeDir(), { extractor });
    expect(b.distance).toBe(a.distance);
    expect(b.real.from).toBe('statistics');

    const other = path.join(tmp, 'dim2.npz');
    saveStatsNpz(other, { mu: new Float64Array(2), sigma: Float64Array.from([1, 0, 0, 1]), dim: 2 });
    await expect(computeFid(other, fakeDir(), { extractor })).rejects.toThrow(/different dimensions: .*dim2.npz has 2, .*fake has 3/);
    await extractor.dispose?.();
  });

  test('bad folders name the offending entry', async () => {
    const extractor = await createInceptionExtractor(model);
    const bad = path.join(tmp, 'bad');
    fs.mkdirSync(bad);
    await expect(computeStatistics(bad, { extractor })).rejects.toThrow(/contains no images/);
    fs.copyFileSync(path.join(realDir(), '0.png'), path.join(bad, 'a.png'));
    fs.writeFileSync(path.join(bad, 'notes.txt'), 'hello');
    await expect(computeStatistics(bad, { extractor })).rejects.toThrow(/notes\.txt is not an image file/);
    fs.rmSync(path.join(bad, 'notes.txt'));
    fs.writeFileSync(path.join(bad, 'broken.png'), 'not a png');
    await expect(computeStatistics(bad, { extractor })).rejects.toThrow(/cannot decode image .*broken\.png/);
    await expect(computeStatistics(path.join(tmp, 'missing'), { extractor })).rejects.toThrow(/does not exist/);
    await expect(computeStatistics(realDir())).rejects.toThrow(/feature extractor is needed/);
    await expect(createInceptionExtractor(path.join(tmp, 'none.onnx'))).rejects.toThrow(/not found; export it/);
    await extractor.dispose?.();
  });
});
