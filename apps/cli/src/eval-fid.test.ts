import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import sharp from 'sharp';
import { onnx } from 'onnx-proto';

const CLI = path.resolve(__dirname, '../dist/cli.js');

/** Stand-in for an Inception export: input [N,3,299,299] -> pool3 = channel means [N,3], logits = pool3 @ W. */
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
    initializer: [onnx.TensorProto.create({ name: 'W', dims: [3, 2], dataType: FLOAT, floatData: [1, -1, 2, 0.5, -1, 3] })],
    input: [info('input', ['N', 3, 299, 299])],
    output: [info('pool3', ['N', 3]), info('logits', ['N', 2])],
  });
  fs.writeFileSync(file, onnx.ModelProto.encode(onnx.ModelProto.create({ irVersion: 8, opsetImport: [{ domain: '', version: 17 }], graph })).finish());
}

function run(args: string[]) {
  return spawnSync(process.execPath, [CLI, 'eval', 'fid', ...args], { encoding: 'utf8' });
}

let tmp: string;
let model: string;

beforeAll(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cli-fid-'));
  model = path.join(tmp, 'inception.onnx');
  tinyInceptionOnnx(model);
  for (const [dir, seed] of [
    ['real', 1],
    ['fake', 2],
  ] as const) {
    fs.mkdirSync(path.join(tmp, dir));
    for (let i = 0; i < 5; i++) {
      const px = Buffer.alloc(20 * 20 * 3, 0).map((_, k) => (k * (7 + i) + seed * 60 + i * 13) & 255);
      await sharp(px, { raw: { width: 20, height: 20, channels: 3 } })
        .png()
        .toFile(path.join(tmp, dir, `${i}.png`));
    }
  }
});

afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe('causalfusion eval fid', () => {
  it('folders -> FID and IS; saved stats give the same FID', () => {
    const stats = path.join(tmp, 'real.npz');
    const r = run(['--real', path.join(tmp, 'real'), '--fake', path.join(tmp, 'fake'), '--features', model, '--batch-size', '2', '--save-stats', stats]);
    expect(r.stderr).toMatch(/real\s+\[#+\] 5\/5 images/);
    expect(r.status).toBe(0);
    const fid = /^FID: (\S+)$/m.exec(r.stdout);
    expect(fid).not.toBeNull();
    expect(Number(fid![1])).toBeGreaterThan(0);
    expect(r.stdout).toMatch(/^IS \(fake\): \d+\.\d+/m);
    expect(fs.existsSync(stats)).toBe(true);

    const again = run(['--real', stats, '--fake', path.join(tmp, 'fake'), '--features', model, '--json']);
    expect(again.status).toBe(0);
    // Same statistics up to the batching of the float64 accumulation (--batch-size 2 above, 50 here).
    expect(Math.abs(JSON.parse(again.stdout).fid - Number(fid![1]))).toBeLessThan(1e-9 * Number(fid![1]));
  });

  it('input problems are one line, exit code 2, naming the entry', () => {
    fs.writeFileSync(path.join(tmp, 'fake', 'readme.txt'), 'x');
    const stray = run(['--real', path.join(tmp, 'real'), '--fake', path.join(tmp, 'fake'), '--features', model]);
    fs.rmSync(path.join(tmp, 'fake', 'readme.txt'));
    expect(stray.status).toBe(2);
    expect(stray.stderr).toMatch(/^error: .*readme\.txt is not an image file/m);

    const missing = run(['--real', path.join(tmp, 'nope'), '--fake', path.join(tmp, 'fake')]);
    expect(missing.status).toBe(2);
    expect(missing.stderr.trim()).toMatch(/^error: --real: .*nope does not exist/);

    const badFeatures = run(['--real', path.join(tmp, 'real'), '--fake', path.join(tmp, 'fake'), '--features', 'resnet']);
    expect(badFeatures.status).toBe(2);
    expect(badFeatures.stderr).toMatch(/--features: expected 'mnist' or a path to an InceptionV3 .onnx file/);
  });
});
