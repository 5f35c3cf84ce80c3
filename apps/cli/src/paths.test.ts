/**
 * Output folders that cannot be made, and outputs written by two commands at once (issue 19, part 4 and
 * "atomic outputs"). Node 20's `fs.mkdirSync(dir, { recursive: true })` spins forever under /proc; every
 * folder is now made by @causalfusion/safetensors' makeDirs, so these answer one line, exit 2, at once.
 */
import { spawn, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { HostAdamW, initialWeights, sizeOf } from '@causalfusion/config';
import { readSafetensors } from '@causalfusion/safetensors';
import { CHECKPOINT_FORMAT, classCheckpointModel, makeTrainConfig, modelConfigOf, writeCheckpoint } from '@causalfusion/train';

const ROOT = path.resolve(__dirname, '../../..');
const CLI = path.join(ROOT, 'apps/cli/dist/cli.js');
// the training app's own command (no CLI pre-check of --out): its folder is made by makeDirs itself
const TRAIN_BIN = path.join(ROOT, 'apps/train/dist/main.js');
/** A training run to export: a checkpoint of the tiny preset (written, not trained), made in beforeAll. */
const RUN = fs.mkdtempSync(path.join(os.tmpdir(), 'cf-paths-run-'));
beforeAll(async () => {
  const config = makeTrainConfig('tiny', { out: RUN, threads: 1 });
  const classNames = Array.from({ length: 10 }, (_, i) => String(i));
  const of = classCheckpointModel(modelConfigOf(config, classNames.length));
  const model = initialWeights(of.entries, 0);
  const optimizer = new HostAdamW(of.entries.filter((e) => e.trainable).map((e) => sizeOf(e.shape)));
  await writeCheckpoint(path.join(RUN, 'checkpoint'), of, {
    model,
    ema: model,
    optimizer: optimizer.getState(),
    state: { format: CHECKPOINT_FORMAT, step: 0, adamStepCount: 0, rng: { s: [1, 2, 3, 4], spare: null }, config, classNames, wallSeconds: 0 },
  });
});
afterAll(() => fs.rmSync(RUN, { recursive: true, force: true }));
const haveProc = fs.existsSync('/proc/self') && process.platform === 'linux';
const procIt = haveProc ? it : it.skip;

/** Run a command with a 20 s limit: a hang shows as a signal, not a stuck test. */
function run(script: string, args: string[]) {
  const started = Date.now();
  const r = spawnSync(process.execPath, [script, ...args], { encoding: 'utf8', timeout: 20_000, cwd: os.tmpdir() });
  return { ...r, seconds: (Date.now() - started) / 1000 };
}

function expectOneLineExit2(r: ReturnType<typeof run>, pattern: RegExp): void {
  expect(r.signal).toBeNull(); // not killed by the 20 s limit
  expect(r.status).toBe(2);
  const lines = r.stderr.trim().split('\n');
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(pattern);
  expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace
}

describe('output folders that cannot be created: one line, exit 2, no hang', () => {
  procIt('export model --out /proc/x', () => {
    const r = run(CLI, ['export', 'model', '--run', RUN, '--out', '/proc/causalfusion-x']);
    expectOneLineExit2(r, /^error: .*\/proc.*; choose another (place|location)$/);
    expect(fs.existsSync('/proc/causalfusion-x')).toBe(false);
  });

  procIt('export onnx --out /proc/x/y', () => {
    expectOneLineExit2(run(CLI, ['export', 'onnx', '--out', '/proc/causalfusion-x/y']), /^error: .*\/proc.*; choose another (place|location)$/);
  });

  procIt('train --out /proc/x', () => {
    expectOneLineExit2(run(CLI, ['train', '--out', '/proc/causalfusion-x', '--steps', '1']), /^error: .*\/proc.*; choose another (place|location)$/);
  });

  procIt('sample --out /proc/sub/x.png', () => {
    expectOneLineExit2(
      run(CLI, ['sample', '--class', '1', '--num', '1', '--out', '/proc/causalfusion-sub/x.png']),
      /^error: .*\/proc.*; choose another (place|location)$/,
    );
  });

  procIt('causalfusion-train --out /proc/x (the folder made by makeDirs, not refused up front)', () => {
    const r = run(TRAIN_BIN, ['--out', '/proc/causalfusion-x/run', '--steps', '1']);
    expectOneLineExit2(r, /^error: cannot create folder \/proc\/causalfusion-x\/run: \/proc does not accept new files or folders .*; choose another location$/);
  });

  it('an --out under a file: one line, exit 2, nothing created', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cf-paths-'));
    try {
      const file = path.join(dir, 'file.txt');
      fs.writeFileSync(file, 'x');
      expectOneLineExit2(run(CLI, ['export', 'model', '--run', RUN, '--out', path.join(file, 'model')]), /file\.txt is a file, not a folder/);
      expectOneLineExit2(run(TRAIN_BIN, ['--out', path.join(file, 'run'), '--steps', '1']), /file\.txt is a file, not a folder; choose another location$/);
      expect(fs.readdirSync(dir)).toEqual(['file.txt']);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('atomic outputs', () => {
  it('two export model commands writing the same --out at once both finish; the folder holds complete files only', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cf-atomic-'));
    try {
      // a private copy of the run
      const runDir = path.join(dir, 'run');
      fs.cpSync(path.join(RUN, 'checkpoint'), path.join(runDir, 'checkpoint'), { recursive: true });
      const out = path.join(dir, 'model');
      const exportOnce = () =>
        new Promise<{ code: number | null; stderr: string }>((resolve) => {
          const child = spawn(process.execPath, [CLI, 'export', 'model', '--run', runDir, '--out', out], { stdio: ['ignore', 'ignore', 'pipe'] });
          let stderr = '';
          child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
          child.on('exit', (code) => resolve({ code, stderr }));
        });
      const results = await Promise.all([exportOnce(), exportOnce()]);
      expect(results).toEqual([0, 0].map(() => ({ code: 0, stderr: '' })));
      expect(fs.readdirSync(out).sort()).toEqual(['config.json', 'meta.json', 'model.safetensors']); // no temporaries
      const ema = readSafetensors(path.join(runDir, 'checkpoint', 'ema.safetensors')).tensors;
      const written = readSafetensors(path.join(out, 'model.safetensors')).tensors;
      expect([...written.keys()]).toEqual([...ema.keys()]);
      for (const [k, t] of ema) expect(written.get(k)!.data).toEqual(t.data);
      expect(JSON.parse(fs.readFileSync(path.join(out, 'meta.json'), 'utf8')).format).toBe('causalfusion-model');
      JSON.parse(fs.readFileSync(path.join(out, 'config.json'), 'utf8'));
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
});
