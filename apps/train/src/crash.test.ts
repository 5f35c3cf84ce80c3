/**
 * Crash safety: training (the built app, dist/main.js, in a child process) is killed with SIGKILL again
 * and again, and resumed each time with --resume. Some kills come from outside at seeded random moments
 * during training; others from inside, at exact points of a checkpoint write (a preloaded hook kills the
 * process right after checkpoint.tmp/ is created, in the middle of writing a file into it, between the
 * two renames, while checkpoint.old/ is being removed, and after the n-th file-system change of any kind
 * under the checkpoint folders). After every kill the checkpoint that --resume
 * would read is complete and never older than the one before; the interrupted and resumed run ends
 * bit-identical (model, EMA, AdamW moments, RNG state, logged losses) to an uninterrupted one.
 */
import { spawn } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { createRng } from '@causalfusion/rng';
import { findCheckpoint, readCheckpoint, readCheckpointState } from './checkpoint';
import { makeTrainConfig, modelConfigOf } from './config';
import { classCheckpointModel } from './export';

jest.setTimeout(150_000);

const MAIN = path.join(__dirname, '..', 'dist', 'main.js');
const STEPS = 60;
const args = (out: string) => [
  '--preset',
  'tiny',
  '--out',
  out,
  '--steps',
  String(STEPS),
  '--checkpoint-every',
  '2',
  '--log-every',
  '1',
  '--sample-every',
  '1000',
  '--sample-steps',
  '2',
  '--sample-ar-steps',
  '2',
  '--threads',
  '1',
  '--seed',
  '7',
];

/**
 * Preloaded into the child: CF_CRASH=<point>:<n> makes the process send itself SIGKILL at the n-th time
 * it reaches <point> while writing its checkpoint (CF_CHECKPOINT, the checkpoint folder):
 *   tmp-created  checkpoint.tmp/ has just appeared
 *   torn-write   half-way through a write into a file under checkpoint.tmp/
 *   only-old     checkpoint/ is gone and checkpoint.old/ is there (the old checkpoint moved aside)
 *   both         checkpoint/ and checkpoint.old/ are both there (the new one renamed into place)
 *   removing-old checkpoint.old/ is half removed (one file gone)
 *   op           after any file-system change under the checkpoint folders (every window, whatever the order)
 * The points are states and operations, not particular calls of checkpoint.ts.
 */
const HOOK = `
const fs = require('fs');
const path = require('path');
const [point, count] = (process.env.CF_CRASH || 'none:0').split(':');
const ckpt = process.env.CF_CHECKPOINT || '/nonexistent';
let left = Number(count);
const die = () => process.kill(process.pid, 'SIGKILL');
const real = { ...fs };
const exists = (p) => real.existsSync(p);
const states = {
  'tmp-created': () => exists(ckpt + '.tmp'),
  'only-old': () => !exists(ckpt) && exists(ckpt + '.old'),
  both: () => exists(ckpt) && exists(ckpt + '.old'),
};
let was = false;
const ours = (p) => typeof p === 'string' && p.startsWith(ckpt);
/** After a change of the file system at p. */
const after = (p) => {
  if (!ours(p)) return;
  if (point === 'op' && --left === 0) die();
  const state = states[point];
  if (state) {
    const now = state();
    if (now && !was && --left === 0) die();
    was = now;
  }
};
const wrap = (name) => {
  fs[name] = function (p, ...rest) {
    const r = real[name].call(this, p, ...rest);
    after(String(p));
    return r;
  };
};
['mkdirSync', 'rmSync', 'rmdirSync', 'unlinkSync', 'writeFileSync', 'copyFileSync'].forEach((n) => wrap(n));
fs.renameSync = function (from, to) {
  const r = real.renameSync.call(this, from, to);
  after(String(ours(String(to)) ? to : from));
  return r;
};
const files = new Map();
fs.openSync = function (p, flags, ...rest) {
  const fd = real.openSync.call(this, p, flags, ...rest);
  // files opened for writing (reads, as --resume does, change nothing)
  if (ours(String(p)) && typeof flags === 'string' && /[wax+]/.test(flags)) {
    files.set(fd, String(p));
    after(String(p));
  }
  return fd;
};
fs.closeSync = function (fd) {
  const p = files.get(fd);
  files.delete(fd);
  const r = real.closeSync.call(this, fd);
  if (p) after(p);
  return r;
};
fs.writeSync = function (fd, data, ...rest) {
  const p = files.get(fd);
  if (p && p.startsWith(ckpt + '.tmp') && typeof data !== 'string' && point === 'torn-write' && --left === 0) {
    // writeSync(fd, buffer[, offset[, length[, position]]]): the first half of what was asked, then the kill
    const offset = typeof rest[0] === 'number' ? rest[0] : 0;
    const length = typeof rest[1] === 'number' ? rest[1] : data.length - offset;
    real.writeSync.call(this, fd, data, offset, length >> 1, typeof rest[2] === 'number' ? rest[2] : null);
    die();
  }
  const r = real.writeSync.call(this, fd, data, ...rest);
  if (p) after(p);
  return r;
};
const rm = fs.rmSync;
fs.rmSync = function (p, ...rest) {
  if (point === 'removing-old' && String(p) === ckpt + '.old' && exists(p) && --left === 0) {
    const names = real.readdirSync(p);
    real.unlinkSync(path.join(p, names[names.length >> 1]));
    die();
  }
  return rm.call(this, p, ...rest);
};
`;

let root: string;
beforeEach(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'cf-crash-'));
});
afterEach(() => fs.rmSync(root, { recursive: true, force: true }));

interface Session {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Run the app; with `killAfterLine`, SIGKILL it `delayMs` after its n-th progress line. */
function session(argv: string[], crash: string, killAfterLine?: { line: number; delayMs: number }): Promise<Session> {
  return new Promise((resolve) => {
    const out = argv[argv.indexOf('--out') + 1];
    const env = { ...process.env, CF_CRASH: crash, CF_CHECKPOINT: path.join(out, 'checkpoint') };
    const child = spawn(process.execPath, ['-r', path.join(root, 'hook.js'), MAIN, ...argv], { env });
    let stdout = '';
    let stderr = '';
    let lines = 0;
    child.stdout.on('data', (d: Buffer) => {
      stdout += d;
      if (!killAfterLine) return;
      const seen = (stdout.match(/^step \d+\/\d+ /gm) ?? []).length;
      if (seen >= killAfterLine.line && lines < killAfterLine.line) setTimeout(() => child.kill('SIGKILL'), killAfterLine.delayMs);
      lines = seen;
    });
    child.stderr.on('data', (d: Buffer) => (stderr += d));
    child.on('exit', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

describe('crash safety', () => {
  it('SIGKILL at random moments and inside checkpoint writes, then --resume: never a corrupt checkpoint, and the same bytes as an uninterrupted run', async () => {
    fs.writeFileSync(path.join(root, 'hook.js'), HOOK);
    const straight = path.join(root, 'straight');
    const plain = await session(args(straight), 'none:0');
    expect([plain.code, plain.stderr]).toEqual([0, '']);

    const run = path.join(root, 'crashed');
    const ckpt = path.join(run, 'checkpoint');
    const modelConfig = modelConfigOf(makeTrainConfig('tiny', { out: run }), 10);
    // every inside point at least once, the rest from outside at random moments (seeded)
    const rng = createRng(20260519);
    const points = ['tmp-created', 'torn-write', 'only-old', 'both', 'removing-old', 'op', 'op'];
    const plan = [...points, ...Array.from({ length: 7 }, () => 'outside')];
    const order = rng.permutation(plan.length);
    const seen = { kills: 0, resumed: 0, duringWrite: 0, onlyOld: 0, bothFolders: 0 };
    let lastStep = 0;
    for (const k of order) {
      const point = plan[k];
      const resume = findCheckpoint(ckpt) !== null;
      const argv = resume ? [...args(run), '--resume'] : args(run);
      const s =
        point === 'outside'
          ? await session(argv, 'none:0', { line: 1 + rng.uniformInt(3), delayMs: rng.uniformInt(120) })
          : await session(argv, `${point}:${1 + rng.uniformInt(point === 'op' ? 50 : point === 'torn-write' ? 8 : 2)}`);
      // (a session that ends by itself never reached its kill point: its output shows where it went)
      expect([point, s.signal, s.stderr, s.signal ? '' : s.stdout]).toEqual([point, 'SIGKILL', '', '']);
      seen.kills++;
      if (resume) seen.resumed++;
      if (fs.existsSync(`${ckpt}.tmp`)) seen.duringWrite++;
      if (!fs.existsSync(ckpt) && fs.existsSync(`${ckpt}.old`)) seen.onlyOld++;
      if (fs.existsSync(ckpt) && fs.existsSync(`${ckpt}.old`)) seen.bothFolders++;
      // the checkpoint --resume reads is complete, and never older than the last one
      const found = findCheckpoint(ckpt);
      if (lastStep > 0) expect(found).not.toBeNull();
      if (found) {
        const content = readCheckpoint(ckpt, classCheckpointModel(modelConfig));
        expect(content.state.step).toBeGreaterThanOrEqual(lastStep);
        expect(content.state.step % 2).toBe(0);
        for (const a of [...content.model, ...content.ema, ...content.optimizer.m, ...content.optimizer.v]) expect(a.every(Number.isFinite)).toBe(true);
        expect(readCheckpointState(ckpt).step).toBe(content.state.step);
        lastStep = content.state.step;
      }
    }
    if (process.env.CF_CRASH_REPORT) console.log(JSON.stringify({ ...seen, lastStep }));
    expect(seen.kills).toBeGreaterThanOrEqual(10);
    expect(lastStep).toBeLessThan(STEPS); // every kill came before the end
    // each window of a checkpoint write was hit: a half-written checkpoint.tmp/, only checkpoint.old/, both
    expect(seen.duringWrite).toBeGreaterThan(0);
    expect(seen.onlyOld).toBeGreaterThan(0);
    expect(seen.bothFolders).toBeGreaterThan(0);
    expect(seen.resumed).toBeGreaterThanOrEqual(9);

    const last = await session([...args(run), '--resume'], 'none:0');
    expect([last.code, last.stderr]).toEqual([0, '']);
    expect(last.stdout).toMatch(new RegExp(`resuming .* at step ${lastStep}:`));
    expect(last.stdout).toMatch(new RegExp(`done: step ${STEPS},`));
    for (const file of ['model.safetensors', 'ema.safetensors', 'optimizer.safetensors']) {
      expect([file, fs.readFileSync(path.join(ckpt, file)).equals(fs.readFileSync(path.join(straight, 'checkpoint', file)))]).toEqual([file, true]);
    }
    const state = (dir: string) => {
      const { step, adamStepCount, rng: r } = JSON.parse(fs.readFileSync(path.join(dir, 'checkpoint', 'state.json'), 'utf8'));
      return { step, adamStepCount, rng: r };
    };
    expect(state(run)).toEqual(state(straight));
    // the log: every step once, with the uninterrupted run's loss, gradient norm, lr and EMA decay
    const log = (dir: string) =>
      fs
        .readFileSync(path.join(dir, 'log.csv'), 'utf8')
        .trim()
        .split('\n')
        .map((l) => l.split(',').slice(0, 5).join(','));
    expect(log(run)).toEqual(log(straight));
    expect(log(run)).toHaveLength(STEPS + 1);
  });
});
