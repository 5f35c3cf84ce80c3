import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import sharp from 'sharp';
import { initBackend, tf } from '@causalfusion/backend';
import { pixelTokenizer, resizeImages } from '@causalfusion/data';
import { createRng } from '@causalfusion/rng';
import { readSafetensors } from '@causalfusion/safetensors';
import { AdamW, CausalDiffusionModel, loadModel, patchify, trainStep } from '@causalfusion/transformer';
import { makeTrainConfig, modelConfigOf, parseTrainArgs, TrainConfig, validateTrainConfig } from './config';
import { BatchSampler, loadTrainingData } from './dataset';
import { Progress } from './report';
import { shardRanges } from './step';
import { exportCheckpoint } from './export';
import { emaDecayAt, lrAt, NanLossError, train, TrainResult } from './trainer';

jest.setTimeout(60_000);
beforeAll(async () => {
  await initBackend({ backend: 'wasm', quiet: true });
});

let root: string;
beforeEach(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'cf-train-'));
});
afterEach(() => fs.rmSync(root, { recursive: true, force: true }));

/** The tiny preset with sampling kept cheap; each test names its own run folder. */
function tiny(name: string, overrides: Partial<TrainConfig> = {}): TrainConfig {
  return makeTrainConfig('tiny', { out: path.join(root, name), sampleEvery: 1000, checkpointEvery: 1000, sampleSteps: 2, sampleArSteps: 2, ...overrides });
}

const quiet = { write: () => {}, tty: false };
function run(config: TrainConfig, extra: { resume?: boolean; exportDir?: string; explicit?: Partial<TrainConfig> } = {}): Promise<TrainResult> {
  return train({ config, resume: extra.resume ?? false, exportDir: extra.exportDir ?? null, help: false, explicit: extra.explicit ?? {}, ...quiet });
}

function weights(dir: string, file = 'model.safetensors'): Map<string, Float32Array> {
  return new Map([...readSafetensors(path.join(dir, 'checkpoint', file)).tensors].map(([k, t]) => [k, t.data]));
}

function maxDiff(a: Map<string, Float32Array>, b: Map<string, Float32Array>): number {
  expect([...a.keys()]).toEqual([...b.keys()]);
  let m = 0;
  for (const [k, x] of a) {
    const y = b.get(k)!;
    for (let i = 0; i < x.length; i++) m = Math.max(m, Math.abs(x[i] - y[i]));
  }
  return m;
}

describe('one step of the app is trainStep of the transformer package', () => {
  it('gives the weights trainStep gives from the same seed and batch', async () => {
    const config = tiny('a', { steps: 1, warmupSteps: 0, runtime: 'tfjs' });
    await run(config);
    // the same step by hand: batch 0, the run's RNG, trainStep's default recipe
    const data = await loadTrainingData(config);
    const rng = createRng(config.seed);
    const batch = new BatchSampler(data, config.batchSize, config.seed, false).batch(0, rng);
    const tok = pixelTokenizer({ imageSize: 28, channels: 1, patchSize: config.patchSize });
    const model = new CausalDiffusionModel(modelConfigOf(config, 10), { seed: config.seed });
    const opt = new AdamW(model.trainableVariables(), { lr: config.lr });
    trainStep(model, opt, { x: tok.toNchw(batch.images), y: batch.labels }, rng);
    const expected = new Map([...model.stateDict()].map(([k, t]) => [k, t.data]));
    expect(maxDiff(weights(config.out), expected)).toBeLessThan(1e-6);
    // the step moved the weights
    const init = new CausalDiffusionModel(modelConfigOf(config, 10), { seed: config.seed });
    expect(maxDiff(new Map([...init.stateDict()].map(([k, t]) => [k, t.data])), expected)).toBeGreaterThan(1e-4);
    [model, init].forEach((m) => m.dispose());
    opt.dispose();
  });

  it('tokenizes as the transformer patchify does (the contract of the model folder)', async () => {
    const data = await loadTrainingData({ data: 'mnist', imageSize: 28, channels: 1 });
    const tok = pixelTokenizer({ imageSize: 28, channels: 1, patchSize: 7 });
    const images = data.images.subarray(0, 3 * 784);
    expect(tok.encode(images)).toEqual(patchify(tok.toNchw(images), 3, 1, 28, 7));
  });

  it('resizes MNIST once when --image-size is not 28 (the mnist preset trains on 16x16 digits)', async () => {
    const data = await loadTrainingData({ data: 'mnist', imageSize: 16, channels: 1 });
    expect([data.size, data.count, data.images.length]).toEqual([16, 60000, 60000 * 256]);
    const full = await loadTrainingData({ data: 'mnist', imageSize: 28, channels: 1 });
    expect(data.images.subarray(0, 256)).toEqual(resizeImages(full.images.subarray(0, 784), 28, 16));
    await expect(loadTrainingData({ data: 'mnist', imageSize: 16, channels: 3 })).rejects.toThrow(/mnist images have 1 channel; drop --channels/);
  });
});

describe('checkpoints and --resume', () => {
  it('4 steps straight equal 2 steps + resume + 2 steps, bit for bit', async () => {
    const straight = tiny('straight', { steps: 4 });
    await run(straight);
    const first = tiny('resumed', { steps: 2 });
    await run(first);
    const result = await run({ ...first, steps: 4 }, { resume: true, explicit: { steps: 4, out: first.out } });
    expect(result.step).toBe(4);
    expect(result.sessionSteps).toBe(2);
    for (const file of ['model.safetensors', 'ema.safetensors', 'optimizer.safetensors']) {
      expect(fs.readFileSync(path.join(first.out, 'checkpoint', file))).toEqual(fs.readFileSync(path.join(straight.out, 'checkpoint', file)));
    }
    const state = (dir: string) => JSON.parse(fs.readFileSync(path.join(dir, 'checkpoint', 'state.json'), 'utf8'));
    expect(state(first.out).rng).toEqual(state(straight.out).rng);
    expect(state(first.out).step).toBe(4);
    const losses = (dir: string) =>
      fs
        .readFileSync(path.join(dir, 'log.csv'), 'utf8')
        .trim()
        .split('\n')
        .slice(1)
        .map((l) => l.split(',')[1]);
    expect(losses(first.out)).toEqual(losses(straight.out));
    expect(losses(first.out)).toHaveLength(4);
  });

  it('Ctrl-C finishes the step, saves a checkpoint, and --resume continues exactly', async () => {
    const straight = tiny('straight', { steps: 3 });
    await run(straight);
    const config = tiny('interrupted', { steps: 3 });
    // the first progress line is written once training starts: interrupt right there
    let sent = false;
    const write = () => {
      if (!sent) {
        sent = true;
        process.emit('SIGINT');
      }
    };
    const stopped = await train({ config, resume: false, exportDir: null, help: false, explicit: {}, write, tty: false });
    expect(stopped.interrupted).toBe(true);
    expect(stopped.step).toBe(1);
    expect(process.listenerCount('SIGINT')).toBe(0); // the handler is removed again
    const result = await run(config, { resume: true, explicit: { out: config.out } });
    expect(result.step).toBe(3);
    expect(result.interrupted).toBe(false);
    expect(fs.readFileSync(path.join(config.out, 'checkpoint', 'model.safetensors'))).toEqual(
      fs.readFileSync(path.join(straight.out, 'checkpoint', 'model.safetensors')),
    );
  });

  it('refuses to overwrite a run, to resume without a checkpoint, and to change the recipe on resume', async () => {
    const config = tiny('r', { steps: 1 });
    await expect(run(config, { resume: true })).rejects.toThrow(/no checkpoint in .*add|no checkpoint in/);
    await run(config);
    await expect(run(config)).rejects.toThrow(/already holds a run .*--resume/);
    await expect(run({ ...config, lr: 0.5 }, { resume: true, explicit: { lr: 0.5 } })).rejects.toThrow(
      /--resume keeps the run's settings, and these differ \(checkpoint vs given\): lr 0\.001 vs 0\.5 \(given\)\. Drop those flags/,
    );
  });
});

/**
 * Two runs' weights agree up to float rounding. k_norm.bias has a zero gradient in exact arithmetic (a
 * bias on every key shifts each query's logits by one constant, which softmax ignores), so its gradient is
 * rounding noise that AdamW (eps 1e-15) turns into full +-lr steps; each run moves it by about the sum of
 * the learning rates, in its own direction.
 */
function expectSameTraining(a: Map<string, Float32Array>, b: Map<string, Float32Array>, config: TrainConfig, steps: number, moved = 1e-3): void {
  const zeroGrad = (k: string) => /k_norm\.bias$/.test(k);
  const lrSum = Array.from({ length: steps }, (_, i) => lrAt(config, i)).reduce((x, y) => x + y, 0);
  for (const [k, x] of a) {
    const y = b.get(k)!;
    const diff = Math.max(...x.map((v, i) => Math.abs(v - y[i])));
    expect([k, diff <= (zeroGrad(k) ? 2 * lrSum : 1e-5)]).toEqual([k, true]);
  }
  // and training moved the weights far more than that
  const init = new CausalDiffusionModel(modelConfigOf(config, 10), { seed: config.seed });
  expect(maxDiff(a, new Map([...init.stateDict()].map(([k, t]) => [k, t.data])))).toBeGreaterThan(moved);
  init.dispose();
}

describe('runtimes', () => {
  it('tfjs: 2 workers give the weights of 1 worker up to float rounding', async () => {
    const one = tiny('w1', { steps: 3, runtime: 'tfjs' });
    const two = tiny('w2', { steps: 3, runtime: 'tfjs', workers: 2 });
    await run(one);
    await run(two);
    expectSameTraining(weights(one.out), weights(two.out), one, 3);
  });

  it('ort gives the weights of tfjs up to float rounding', async () => {
    const ort = tiny('ort', { steps: 3, runtime: 'ort', threads: 2 });
    const tfjs = tiny('tfjs', { steps: 3, runtime: 'tfjs' });
    const r = await run(ort);
    expect(r.backend).toMatch(/^ort: onnxruntime-node, 2 threads$/);
    await run(tfjs);
    expectSameTraining(weights(ort.out), weights(tfjs.out), ort, 3);
    expectSameTraining(weights(ort.out, 'ema.safetensors'), weights(tfjs.out, 'ema.safetensors'), ort, 3, 1e-4);
  });

  it('the ort runtime never loads tfjs (the app, a run, its checkpoint and sample grid)', () => {
    // a fresh Node process: jest's module registry is not Node's
    const script = `
      const t = require(${JSON.stringify(path.join(__dirname, '..', 'dist', 'index.js'))});
      const tfjs = () => Object.keys(require.cache).filter((k) => k.includes('@tensorflow'));
      (async () => {
        const cmd = t.parseTrainArgs(['--preset', 'tiny', '--out', ${JSON.stringify(path.join(root, 'no-tfjs'))}, '--steps', '2', '--sample-every', '2', '--sample-steps', '2']);
        await t.train({ ...cmd, write: () => {}, tty: false });
        console.log(JSON.stringify(tfjs()));
      })();`;
    const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8' });
    expect(r.status).toBe(0);
    expect(JSON.parse(r.stdout.trim().split('\n').pop()!)).toEqual([]);
    expect(fs.existsSync(path.join(root, 'no-tfjs', 'samples', 'step-2.png'))).toBe(true);
  });

  it('a run resumes on the other runtime (one checkpoint format)', async () => {
    const straight = tiny('straight', { steps: 4, runtime: 'ort' });
    await run(straight);
    const first = tiny('switch', { steps: 2, runtime: 'ort' });
    await run(first);
    const resumed = { ...first, steps: 4, runtime: 'tfjs' as const };
    const r = await run(resumed, { resume: true, explicit: { steps: 4, runtime: 'tfjs' } });
    expect(r.step).toBe(4);
    expect(r.backend).toMatch(/^tfjs: /);
    expectSameTraining(weights(straight.out), weights(first.out), straight, 4);
  });
});

describe('NaN loss', () => {
  it('stops with a clear message before applying the step', async () => {
    const config = tiny('nan', { steps: 5, lr: 1e30, warmupSteps: 0 });
    const err = await run(config).catch((e: Error) => e);
    expect(err).toBeInstanceOf(NanLossError);
    expect((err as Error).message).toMatch(/loss is (NaN|Infinity) at step \d.*lower --lr/);
  });
});

describe('schedules and EMA warmup', () => {
  it('warms the learning rate up linearly and the EMA decay from 2/11', () => {
    expect([0, 1, 4, 9].map((s) => lrAt({ lr: 1, warmupSteps: 5 }, s))).toEqual([0.2, 0.4, 1, 1]);
    expect(lrAt({ lr: 0.3, warmupSteps: 0 }, 0)).toBe(0.3);
    expect(emaDecayAt({ emaDecay: 0.999, emaWarmup: true }, 1)).toBeCloseTo(2 / 11, 12);
    expect(emaDecayAt({ emaDecay: 0.9, emaWarmup: true }, 1000)).toBe(0.9);
    expect(emaDecayAt({ emaDecay: 0.999, emaWarmup: false }, 1)).toBe(0.999);
  });

  it('with warmup a short run has an EMA near the trained weights; without, near the initial ones', async () => {
    const steps = 12;
    const warm = tiny('warm', { steps, emaDecay: 0.999 });
    const cold = tiny('cold', { steps, emaDecay: 0.999, emaWarmup: false });
    await run(warm);
    await run(cold);
    const init = new CausalDiffusionModel(modelConfigOf(warm, 10), { seed: warm.seed });
    const initW = new Map([...init.stateDict()].map(([k, t]) => [k, t.data]));
    init.dispose();
    const dist = (a: Map<string, Float32Array>, b: Map<string, Float32Array>) => {
      let s = 0;
      for (const [k, x] of a) x.forEach((v, i) => (s += (v - b.get(k)![i]) ** 2));
      return Math.sqrt(s);
    };
    const warmEma = weights(warm.out, 'ema.safetensors');
    const warmModel = weights(warm.out);
    expect(dist(warmEma, warmModel)).toBeLessThan(0.5 * dist(warmEma, initW));
    const coldEma = weights(cold.out, 'ema.safetensors');
    expect(dist(coldEma, initW)).toBeLessThan(0.05 * dist(coldEma, weights(cold.out)));
  });
});

describe('--init-from', () => {
  it('starts a class run from a model folder (every tensor of the same model), and names a missing one', async () => {
    const source = tiny('source', { steps: 2 });
    await run(source, { exportDir: path.join(root, 'source-model') });
    const next = tiny('next', { steps: 1, lr: 1e-9, initFrom: path.join(root, 'source-model') });
    const lines: string[] = [];
    await train({ config: next, resume: false, exportDir: null, help: false, explicit: {}, write: (l) => void lines.push(l), tty: false });
    expect(lines.join('')).toMatch(/^initialised all \d+ tensors from .*source-model$/m);
    const a = readSafetensors(path.join(root, 'source-model', 'model.safetensors')).tensors;
    const b = weights(next.out);
    for (const [k, { data: v }] of a) expect([k, v.every((x, i) => Math.abs(x - b.get(k)![i]) < 1e-6)]).toEqual([k, true]);
    expect(() => validateTrainConfig({ ...next, initFrom: path.join(root, 'nope') })).toThrow(/^--init-from .*nope: no .*model\.safetensors/);
  });
});

describe('what a run writes', () => {
  it('writes log.csv, loss.png, sample grids, plain progress lines and an exported model folder', async () => {
    const tensorsBefore = tf.memory().numTensors;
    const config = tiny('files', { steps: 4, sampleEvery: 2, checkpointEvery: 2, logEvery: 2 });
    const lines: string[] = [];
    const exportDir = path.join(root, 'model');
    await train({
      config,
      resume: false,
      exportDir,
      help: false,
      explicit: {},
      commandLine: 'causalfusion train --preset tiny',
      write: (s) => lines.push(s),
      tty: false,
    });
    const csv = fs.readFileSync(path.join(config.out, 'log.csv'), 'utf8').trim().split('\n');
    expect(csv[0]).toBe('step,loss,grad_norm,lr,ema_decay,steps_per_s,wall_s');
    expect(csv.slice(1).map((l) => Number(l.split(',')[0]))).toEqual([1, 2, 3, 4]);
    expect(csv.slice(1).every((l) => Number(l.split(',')[1]) > 0)).toBe(true);
    const loss = await sharp(path.join(config.out, 'loss.png')).metadata();
    expect([loss.format, loss.width, loss.height]).toEqual(['png', 640, 320]);
    for (const s of [2, 4]) {
      const grid = await sharp(path.join(config.out, 'samples', `step-${s}.png`)).metadata();
      // 10 classes x 1 per class, 28-pixel images with 2-pixel gaps
      expect([grid.width, grid.height]).toEqual([28 + 4, 10 * 28 + 11 * 2]);
    }
    const progress = lines.filter((l) => l.startsWith('step '));
    expect(progress.map((l) => l.split(' ')[1])).toEqual(['2/4', '4/4']);
    expect(progress.every((l) => l.endsWith('\n') && !l.includes('\r'))).toBe(true);
    // the model folder of the contract
    const meta = JSON.parse(fs.readFileSync(path.join(exportDir, 'meta.json'), 'utf8'));
    expect(meta).toMatchObject({
      format: 'causalfusion-model',
      dataset: 'mnist',
      classNames: ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'],
      tokenizer: { kind: 'pixel', imageSize: 28, channels: 1, patchSize: 7, range: [-1, 1] },
      training: { command: 'causalfusion train --preset tiny', steps: 4, backend: expect.stringMatching(/^ort: onnxruntime-node, \d+ threads?$/), workers: 1 },
    });
    const model = await loadModel(exportDir);
    expect([model.config.inputSize, model.config.patchSize, model.config.latentChannels, model.numTokens, model.tokenDim]).toEqual([28, 7, 1, 16, 49]);
    // the exported weights are the EMA of the checkpoint
    const ema = weights(config.out, 'ema.safetensors');
    expect(maxDiff(new Map([...model.stateDict()].map(([k, t]) => [k, t.data])), ema)).toBe(0);
    model.dispose();
    // the same folder straight from the checkpoint (no backend), as `causalfusion export model` writes it
    const fromCkpt = path.join(root, 'from-checkpoint');
    expect(exportCheckpoint(config.out, fromCkpt)).toMatchObject({ step: 4 });
    expect(fs.readFileSync(path.join(fromCkpt, 'config.json'), 'utf8')).toBe(fs.readFileSync(path.join(exportDir, 'config.json'), 'utf8'));
    const metaCkpt = JSON.parse(fs.readFileSync(path.join(fromCkpt, 'meta.json'), 'utf8'));
    expect({ ...metaCkpt, training: undefined }).toEqual({ ...meta, training: undefined });
    expect(metaCkpt.training).toMatchObject({ steps: 4, weights: 'ema' });
    const reloaded = await loadModel(fromCkpt);
    expect(maxDiff(new Map([...reloaded.stateDict()].map(([k, t]) => [k, t.data])), ema)).toBe(0);
    reloaded.dispose();
    expect(() => exportCheckpoint(path.join(root, 'no-run'), fromCkpt)).toThrow(/no training checkpoint in .*no-run.*--out folder/);
    // no tensors leak per run (the first sampling may keep one cached constant)
    expect(tf.memory().numTensors - tensorsBefore).toBeLessThanOrEqual(1);
  });

  it('trains on an image folder', async () => {
    const dir = path.join(root, 'folder');
    for (const [cls, value] of [
      ['dark', 20],
      ['light', 230],
    ] as const) {
      fs.mkdirSync(path.join(dir, cls), { recursive: true });
      for (let i = 0; i < 3; i++) {
        const px = Buffer.alloc(16 * 12 * 3, value + i);
        await sharp(px, { raw: { width: 16, height: 12, channels: 3 } })
          .png()
          .toFile(path.join(dir, cls, `${i}.png`));
      }
    }
    const config = tiny('folder-run', { data: dir, imageSize: 8, channels: 3, patchSize: 4, steps: 2, batchSize: 4, flip: true, sampleEvery: 2 });
    const result = await run(config);
    expect(result.step).toBe(2);
    const grid = await sharp(path.join(config.out, 'samples', 'step-2.png')).metadata();
    expect([grid.width, grid.height, grid.channels]).toEqual([8 + 4, 2 * 8 + 3 * 2, 3]);
  });
});

describe('shardRanges', () => {
  it('cuts the batch into contiguous, near-equal shards that cover it', () => {
    expect(shardRanges(64, 2)).toEqual([
      [0, 32],
      [32, 64],
    ]);
    expect(shardRanges(5, 3)).toEqual([
      [0, 1],
      [1, 3],
      [3, 5],
    ]);
    expect(shardRanges(8, 1)).toEqual([[0, 8]]);
  });

  it('gives the main thread extra samples, leaving every worker at least one', () => {
    expect(shardRanges(64, 2, 2)).toEqual([
      [0, 34],
      [34, 64],
    ]);
    expect(shardRanges(64, 4, 2)).toEqual([
      [0, 18],
      [18, 33],
      [33, 48],
      [48, 64],
    ]);
    expect(shardRanges(4, 2, 2)).toEqual([
      [0, 3],
      [3, 4],
    ]);
    expect(shardRanges(8, 1, 2)).toEqual([[0, 8]]);
  });
});

describe('Progress', () => {
  it('redraws one line on a terminal and ends it once', () => {
    const out: string[] = [];
    const p = new Progress(10, true, (s) => out.push(s));
    p.update(5, 0.5, 2);
    p.break();
    p.break();
    expect(out[0]).toMatch(/^\r\[#{12}-{12}\] step 5\/10  loss 0\.5000  2\.00 steps\/s  eta 0m02s/);
    expect(out.slice(1)).toEqual(['\n']);
  });
});

describe('parseTrainArgs', () => {
  it('reads flags over the preset', () => {
    const cmd = parseTrainArgs([
      '--out',
      'runs/x',
      '--steps',
      '100',
      '--runtime',
      'tfjs',
      '--workers',
      '2',
      '--lr',
      '3e-4',
      '--no-ema-warmup',
      '--export',
      'm',
    ]);
    expect(cmd.config).toMatchObject({ out: 'runs/x', steps: 100, runtime: 'tfjs', workers: 2, lr: 3e-4, emaWarmup: false, patchSize: 4, batchSize: 64 });
    expect(cmd.exportDir).toBe('m');
    expect(cmd.explicit).toEqual({ out: 'runs/x', steps: 100, runtime: 'tfjs', workers: 2, lr: 3e-4, emaWarmup: false });
    expect(parseTrainArgs(['--preset', 'tiny', '--out', 'o']).config.hiddenSize).toBe(32);
  });

  it('names the bad flag', () => {
    expect(() => parseTrainArgs(['--out', 'o', '--batch', '100000000'])).toThrow(/--batch 100000000 is over the maximum of 4096/);
    expect(() => parseTrainArgs(['--out', 'o', '--steps', 'many'])).toThrow(/--steps expects an integer, got "many"/);
    expect(() => parseTrainArgs(['--out', 'o', '--bogus'])).toThrow(/bogus/);
    expect(() => parseTrainArgs(['--steps', '10'])).toThrow(/--out/);
    expect(() => parseTrainArgs(['--out', 'o', '--patch-size', '5'])).toThrow(/patch size 5 does not divide image size 16/);
    expect(() => parseTrainArgs(['--out', 'o', '--preset', 'huge'])).toThrow(/unknown preset "huge"/);
    expect(() => parseTrainArgs(['--out', 'o', '--runtime', 'tfjs', '--workers', '40', '--batch', '8'])).toThrow(/40 workers need a batch of at least 40/);
    expect(() => parseTrainArgs(['--out', 'o', '--workers', '2'])).toThrow(/--workers 2 is for --runtime tfjs.*--threads/);
    expect(() => parseTrainArgs(['--out', 'o', '--runtime', 'gpu'])).toThrow(/runtime must be ort or tfjs/);
    expect(() => parseTrainArgs(['--out', 'o', '--threads', '0'])).toThrow(/threads must be a positive integer/);
    expect(() => parseTrainArgs(['--out', 'o', '--backend', 'gpu'])).toThrow(/--backend must be/);
  });
});
