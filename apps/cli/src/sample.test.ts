import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { readGray, runCli, writeTinyModel } from './tiny-model.test-util';

jest.setTimeout(60_000);

let tmp: string;
let model: string;
let numParams: number;

beforeAll(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cli-sample-'));
  model = path.join(tmp, 'model');
  numParams = await writeTinyModel(model);
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** Is the 7x7 token (row, col) of image (imageRow, imageCol) in the grid all 128, i.e. token value 0 (not generated yet)? */
function tokenIsBlank(img: { data: Buffer; width: number }, imageRow: number, imageCol: number, row: number, col: number): boolean {
  for (let y = 0; y < 7; y++)
    for (let x = 0; x < 7; x++) {
      if (img.data[(imageRow * 28 + row * 7 + y) * img.width + imageCol * 28 + col * 7 + x] !== 128) return false;
    }
  return true;
}

describe('causalfusion sample', () => {
  const base = ['sample', '--class', '3', '7', '--num', '3', '--ar-steps', '4', '--steps', '10'];

  it('writes a grid (a row per class) and one progress frame per AR step that fills the canvas', async () => {
    const out = path.join(tmp, 'grid.png');
    const frames = path.join(tmp, 'frames');
    const r = runCli([...base, '--model', model, '--seed', '5', '--out', out, '--progress-frames', frames]);
    expect(r.stderr).toMatch(/AR step 4\/4, diffusion step 10\/10/);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/6 images \(2 rows of 3; classes 3, 7\), 4 AR steps \[4, 4, 4, 4\] x 10 ddpm steps, CFG 3, seed 5/);
    const grid = await readGray(out);
    expect([grid.width, grid.height]).toEqual([3 * 28, 2 * 28]);

    // raster order, 4 AR steps on a 4x4 token grid: after step k the first k token rows are drawn
    expect(fs.readdirSync(frames).sort()).toEqual(['ar-step-1.png', 'ar-step-2.png', 'ar-step-3.png', 'ar-step-4.png']);
    for (let k = 1; k <= 4; k++) {
      const frame = await readGray(path.join(frames, `ar-step-${k}.png`));
      expect([frame.width, frame.height]).toEqual([3 * 28, 2 * 28]);
      for (let i = 0; i < 6; i++) for (let row = 0; row < 4; row++) expect(tokenIsBlank(frame, Math.floor(i / 3), i % 3, row, 0)).toBe(row >= k);
    }
    // the last frame is the x0 estimate of the last diffusion step: the sample itself, up to rounding
    const last = await readGray(path.join(frames, 'ar-step-4.png'));
    let maxDiff = 0;
    for (let i = 0; i < grid.data.length; i++) maxDiff = Math.max(maxDiff, Math.abs(grid.data[i] - last.data[i]));
    expect(maxDiff).toBeLessThanOrEqual(1);
  });

  it('the same seed gives the same images, another seed other ones (random order, DDIM, CFG interval)', async () => {
    const args = [...base, '--model', model, '--order', 'random', '--sampler', 'ddim', '--cfg', '2', '--cfg-interval', '0,500'];
    const files = ['a', 'b', 'c'].map((n) => path.join(tmp, `${n}.png`));
    for (const [file, seed] of [
      [files[0], '1'],
      [files[1], '1'],
      [files[2], '2'],
    ]) {
      const r = runCli([...args, '--seed', seed, '--out', file]);
      expect({ status: r.status, error: r.status ? r.stderr : '' }).toEqual({ status: 0, error: '' });
    }
    const [a, b, c] = await Promise.all(files.map(readGray));
    expect(a.data.equals(b.data)).toBe(true);
    expect(a.data.equals(c.data)).toBe(false);
    // --zoom repeats pixels: the same images, twice as large
    const zoomed = path.join(tmp, 'zoomed.png');
    expect(runCli([...args, '--seed', '1', '--zoom', '2', '--out', zoomed]).status).toBe(0);
    const z = await readGray(zoomed);
    expect([z.width, z.height]).toEqual([2 * a.width, 2 * a.height]);
    for (let y = 0; y < z.height; y++) for (let x = 0; x < z.width; x++) expect(z.data[y * z.width + x]).toBe(a.data[(y >> 1) * a.width + (x >> 1)]);
  });

  it('--runtime ort (the default) and --runtime tfjs draw the same images; export onnx writes the graphs', async () => {
    const args = [...base, '--model', model, '--order', 'random', '--seed', '4'];
    const files = { ort: path.join(tmp, 'ort.png'), tfjs: path.join(tmp, 'tfjs.png'), workers: path.join(tmp, 'workers.png') };
    const ort = runCli([...args, '--threads', '1', '--out', files.ort]);
    const workers = runCli([...args, '--threads', '2', '--out', files.workers]);
    expect({ status: workers.status, error: workers.status ? workers.stderr : '' }).toEqual({ status: 0, error: '' });
    expect(workers.stderr).toMatch(/on onnxruntime cpu, rows split over 2 onnxruntimes x 1 thread\(s\)/);
    expect((await readGray(files.workers)).data.equals((await readGray(files.ort)).data)).toBe(true);
    const tfjs = runCli([...args, '--runtime', 'tfjs', '--out', files.tfjs]);
    expect({ status: ort.status, error: ort.status ? ort.stderr : '' }).toEqual({ status: 0, error: '' });
    expect(tfjs.status).toBe(0);
    expect(ort.stderr).toMatch(/on onnxruntime cpu, 1 thread\(s\)/);
    expect(tfjs.stderr).toMatch(/on tfjs (wasm|tensorflow|cpu)/);
    const [a, b] = await Promise.all([readGray(files.ort), readGray(files.tfjs)]);
    let maxDiff = 0;
    for (let i = 0; i < a.data.length; i++) maxDiff = Math.max(maxDiff, Math.abs(a.data[i] - b.data[i]));
    expect(maxDiff).toBeLessThanOrEqual(1); // float rounding may flip a pixel by one gray level
    const out = path.join(tmp, 'onnx');
    const r = runCli(['export', 'onnx', '--model', model, '--out', out]);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/cond\.onnx, push\.onnx, eps\.onnx, weights\.bin \(opset 17, 16 tokens of 49 values\)/);
    expect(fs.readdirSync(out).sort()).toEqual(['causalfusion-onnx.json', 'cond.onnx', 'eps.onnx', 'meta.json', 'push.onnx', 'weights.bin']);
  });

  it('a model\'s meta.json "sampling" sets the defaults it was measured with; a flag wins; a bad one is one line', () => {
    const tuned = path.join(tmp, 'tuned');
    fs.cpSync(model, tuned, { recursive: true });
    const metaFile = path.join(tuned, 'meta.json');
    const meta = JSON.parse(fs.readFileSync(metaFile, 'utf8'));
    fs.writeFileSync(metaFile, JSON.stringify({ ...meta, sampling: { sampler: 'ddim', steps: '6', cfg: 1.5 } }));
    const run = (...extra: string[]) => runCli(['sample', '--model', tuned, '--class', '3', '--num', '1', '--out', path.join(tmp, 'tuned.png'), ...extra]);
    expect(run().stdout).toMatch(/x 6 ddim steps, CFG 1\.5,/);
    expect(run('--sampler', 'ddpm', '--steps', '4', '--cfg', '2').stdout).toMatch(/x 4 ddpm steps, CFG 2,/);
    // edit keeps its own stronger CFG default, and takes the model's sampler and steps
    const edited = runCli([
      'edit',
      '--model',
      tuned,
      '--input',
      path.join(tmp, 'tuned.png'),
      '--mask',
      'center',
      '--class',
      '5',
      '--out',
      path.join(tmp, 'tuned-edit.png'),
    ]);
    expect(edited.stdout).toMatch(/x 6 ddim steps, CFG 5,/);

    fs.writeFileSync(metaFile, JSON.stringify({ ...meta, sampling: { sampler: 'euler' } }));
    const bad = run();
    expect(bad.status).toBe(2);
    expect(bad.stderr.trim().split('\n')).toHaveLength(1);
    expect(bad.stderr).toMatch(/"sampling\.sampler" must be "ddpm" or "ddim"/);
  });

  it('info --model prints the config, parameter count, backend and the training record', () => {
    const r = runCli(['info', '--model', model]);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/input_size 28, patch_size 7, latent_channels 1, hidden_size 32/);
    expect(r.stdout).toContain(`parameters: ${numParams.toLocaleString('en-US')}`);
    expect(r.stdout).toMatch(/backend: +(wasm|tensorflow|cpu)/);
    expect(r.stdout).toMatch(/training\.command: none: random weights for the tests/);
  });

  it('bad input is one line on stderr with exit code 2', () => {
    const cases: [string[], RegExp][] = [
      [['--class', 'seven'], /^error: --class: unknown class 'seven'; this test model knows 0, 1, 2, 3, 4, 5, 6, 7, 8, 9$/],
      [['--class', '10'], /^error: --class: unknown class '10'/],
      [['--order', 'spiral'], /^error: --order: unknown order 'spiral'; use one of raster, random, block, dilated$/],
      [['--ar-steps', '17'], /^error: --ar-steps: 17 AR steps for 16 tokens/],
      [['--cfg-interval', '600,100'], /^error: --cfg-interval: expected lo,hi/],
      [['--model', path.join(tmp, 'nowhere')], /^error: --model: .*nowhere does not exist$/],
      [['--runtime', 'torch'], /^error: --runtime: unknown runtime 'torch'; use ort \(onnxruntime-node, fast\) or tfjs$/],
      [['--device', 'tpu'], /^error: --device: expected cpu or cuda, got 'tpu'$/],
      [['--threads', '0'], /^error: --threads: expected a positive integer, got '0'$/],
      [['--workers', 'two'], /^error: --workers: expected a positive integer, got 'two'$/],
      [['--workers', '2', '--runtime', 'tfjs'], /^error: --workers splits the rows over onnxruntimes; it needs --runtime ort$/],
      [['--zoom', '1.5'], /^error: --zoom: expected a positive integer, got '1.5'$/],
      [['--backend', 'wasm'], /^error: --backend picks the tfjs backend; add --runtime tfjs$/],
      [['--device', 'cuda'], /^error: .*(no CUDA execution provider|cannot use CUDA).*Use --device cpu|^error: --device cuda/],
    ];
    for (const [args, message] of cases) {
      const r = runCli(['sample', '--model', model, '--out', path.join(tmp, 'x.png'), ...args]);
      expect(r.stderr.trim()).toMatch(message);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.status).toBe(2);
    }
    expect(fs.existsSync(path.join(tmp, 'x.png'))).toBe(false);
  });
});
