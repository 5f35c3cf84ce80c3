/**
 * Training edge cases of both tasks (class and --task multimodal): a run stopped by SIGINT / SIGTERM
 * exits 130 / 143 after saving its checkpoint; --resume with nothing left to do says so and writes
 * nothing; --resume refuses a --preset or model flag that differs from the checkpoint; a negative number
 * after a numeric flag is that flag's value, refused with what the flag allows.
 */
import { spawn, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { FLAGS, parseTrainArgs } from './config';
import { MM_FLAGS, parseMultimodalTrainArgs } from './multimodal-config';
import { parseTrainCommand } from './task';
import { train } from './trainer';
import { tinyClassArgs, tinyMultimodalArgs } from '../../../test-utils/tiny-training';

jest.setTimeout(120_000);

const MAIN = path.join(__dirname, '..', 'dist', 'main.js');
const quiet = { write: () => {}, tty: false };

let root: string;
beforeEach(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'cf-edge-'));
});
afterEach(() => fs.rmSync(root, { recursive: true, force: true }));

const classArgs = tinyClassArgs;
const mmArgs = (out: string, steps: number) => [...tinyMultimodalArgs(out, steps), '--threads', '1'];

/** Every file under `dir` with its bytes and modification time. */
function snapshot(dir: string): Record<string, string> {
  const files: Record<string, string> = {};
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else files[path.relative(dir, p)] = `${fs.statSync(p).mtimeMs} ${fs.readFileSync(p).toString('base64')}`;
    }
  };
  walk(dir);
  return files;
}

/** Run the built app; send `signal` once its first progress line is out. */
function stopWith(signal: NodeJS.Signals, argv: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [MAIN, ...argv]);
    let stdout = '';
    let stderr = '';
    let sent = false;
    child.stdout.on('data', (d: Buffer) => {
      stdout += d;
      if (!sent && /^step \d+\/\d+ /m.test(stdout)) {
        sent = true;
        child.kill(signal);
      }
    });
    child.stderr.on('data', (d: Buffer) => (stderr += d));
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

const stateStep = (out: string) => JSON.parse(fs.readFileSync(path.join(out, 'checkpoint', 'state.json'), 'utf8')).step as number;

describe('a run stopped by a signal exits as shells expect (after saving its checkpoint)', () => {
  it.each([
    ['class', 'SIGINT', 130],
    ['class', 'SIGTERM', 143],
    ['multimodal', 'SIGTERM', 143],
  ] as const)('%s task, %s: exit %d, checkpoint at the step it stopped, --resume continues', async (task, signal, code) => {
    const out = path.join(root, 'run');
    const argv =
      task === 'class'
        ? [...classArgs(out, 500), '--log-every', '1', '--checkpoint-every', '1000']
        : [...mmArgs(out, 500), '--log-every', '1', '--checkpoint-every', '1000'];
    const r = await stopWith(signal, argv);
    expect([r.code, r.stderr]).toEqual([code, '']);
    const stopped = /stopped at step (\d+): checkpoint saved/.exec(r.stdout);
    expect(stopped).not.toBeNull();
    expect(r.stdout).not.toMatch(/^done:/m);
    const step = Number(stopped![1]);
    expect(stateStep(out)).toBe(step);
    const resumed = spawnSync(process.execPath, [MAIN, ...argv.map((a) => (a === '500' ? String(step + 1) : a)), '--resume'], { encoding: 'utf8' });
    expect([resumed.status, resumed.stderr]).toEqual([0, '']);
    expect(resumed.stdout).toMatch(new RegExp(`resuming .* at step ${step}`));
    expect(stateStep(out)).toBe(step + 1);
  });
});

describe('--resume with nothing left to do', () => {
  it('class task: says so plainly (no "last loss NaN"), exits 0, writes nothing', async () => {
    const out = path.join(root, 'c');
    await train({ ...parseTrainArgs(classArgs(out, 2)), ...quiet });
    const before = snapshot(out);
    for (const steps of [2, 1]) {
      const lines: string[] = [];
      const r = await train({
        ...parseTrainArgs([...classArgs(out, steps), '--resume', '--export', path.join(root, 'model')]),
        write: (s) => lines.push(s),
        tty: false,
      });
      expect([r.upToDate, r.step, r.sessionSteps, r.interrupted]).toEqual([true, 2, 0, false]);
      expect(lines.join('')).toBe(
        `nothing left to do: the run in ${out} is already at step 2 (--steps ${steps}); raise --steps above 2 to train longer, ` +
          `or write its model folder with causalfusion export model --run ${out} --out ${path.join(root, 'model')}\n`,
      );
    }
    // the app: one line, exit 0
    const app = spawnSync(process.execPath, [MAIN, ...classArgs(out, 2), '--resume'], { encoding: 'utf8' });
    expect([app.status, app.stderr, app.stdout]).toEqual([
      0,
      '',
      `nothing left to do: the run in ${out} is already at step 2 (--steps 2); raise --steps above 2 to train longer\n`,
    ]);
    expect(snapshot(out)).toEqual(before);
    expect(fs.existsSync(path.join(root, 'model'))).toBe(false);
  });

  it('multimodal task (the app): the same', () => {
    const out = path.join(root, 'm');
    const app = (...argv: string[]) => spawnSync(process.execPath, [MAIN, ...argv], { encoding: 'utf8' });
    expect(app(...mmArgs(out, 2)).status).toBe(0);
    const before = snapshot(out);
    for (const steps of [2, 1]) {
      const r = app(...mmArgs(out, steps), '--resume');
      expect([r.status, r.stderr, r.stdout]).toEqual([
        0,
        '',
        `nothing left to do: the run in ${out} is already at step 2 (--steps ${steps}); raise --steps above 2 to train longer\n`,
      ]);
    }
    expect(snapshot(out)).toEqual(before);
  });
});

describe('--resume refuses settings that differ from the checkpoint', () => {
  it('class task: a --preset or model flag that differs is refused in one line naming every key; no --preset (or the same) resumes', async () => {
    const out = path.join(root, 'c');
    await train({ ...parseTrainArgs(classArgs(out, 1)), ...quiet });
    const resume = (...extra: string[]) =>
      train({ ...parseTrainArgs(['--out', out, '--resume', '--steps', '2', '--sample-every', '1000', '--threads', '1', ...extra]), ...quiet });
    let err: Error | undefined;
    await resume('--preset', 'mnist').catch((e: Error) => (err = e));
    expect(err?.message).toMatch(
      /^--resume keeps the run's settings, and these differ \(checkpoint vs given\): imageSize 28 vs 16, patchSize 7 vs 4, hiddenSize 32 vs 128, depth 1 vs 4, numHeads 2 vs 4, numCondTokens 2 vs 4, batchSize 8 vs 64, warmupSteps 5 vs 500, emaDecay 0\.99 vs 0\.999 \(--preset mnist\)\. Drop those flags/,
    );
    expect(err?.message).not.toMatch(/\n/);
    await expect(resume('--preset', 'tiny', '--width', '64', '--lr', '0.01', '--no-trainable-pos')).rejects.toThrow(
      /: hiddenSize 32 vs 64 \(--width\); lr 0\.001 vs 0\.01 \(--lr\); trainablePos true vs false \(--no-trainable-pos\)\. /,
    );
    // a flag that agrees with the checkpoint overrides the preset's value
    await expect(
      resume(
        '--preset',
        'mnist',
        '--image-size',
        '28',
        '--patch-size',
        '7',
        '--width',
        '32',
        '--depth',
        '1',
        '--heads',
        '2',
        '--cond-tokens',
        '2',
        '--batch',
        '8',
        '--warmup',
        '5',
        '--ema-decay',
        '0.99',
      ),
    ).resolves.toMatchObject({ step: 2 });
    expect(stateStep(out)).toBe(2);
    // the default preset (mnist) is not "given"; the run's own preset agrees; steps and sampling flags may change
    await expect(train({ ...parseTrainArgs(['--out', out, '--resume', '--steps', '3', '--threads', '1']), ...quiet })).resolves.toMatchObject({ step: 3 });
    await expect(resume('--preset', 'tiny', '--steps', '4', '--sample-steps', '3', '--checkpoint-every', '5')).resolves.toMatchObject({ step: 4 });
  });

  it('multimodal task (the app): the same, exit 2 in one line; a checkpoint of the other task is named as such', () => {
    const out = path.join(root, 'm');
    const app = (...argv: string[]) => spawnSync(process.execPath, [MAIN, ...argv], { encoding: 'utf8' });
    expect(app(...mmArgs(out, 1)).status).toBe(0);
    const resume = (...extra: string[]) => app('--task', 'multimodal', '--out', out, '--resume', '--steps', '2', '--threads', '1', ...extra);
    let r = resume('--preset', 'multimodal');
    expect([r.status, r.stdout]).toEqual([2, '']);
    expect(r.stderr).toMatch(
      /^error: --resume keeps the run's settings, and these differ \(checkpoint vs given\): hiddenSize 32 vs 128, depth 1 vs 4, numHeads 2 vs 4, batchSize 8 vs 32, warmupSteps 5 vs 500, emaDecay 0\.99 vs 0\.999 \(--preset multimodal\)\. [^\n]*\n$/,
    );
    r = resume('--caption-prob', '0.7', '--width', '64');
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/: hiddenSize 32 vs 64 \(--width\); captionProb 0\.5 vs 0\.7 \(--caption-prob\)\. /);
    expect(stateStep(out)).toBe(1);
    // without --preset, or with the run's own, it resumes
    r = resume();
    expect([r.status, r.stderr]).toEqual([0, '']);
    r = resume('--preset', 'multimodal-tiny', '--steps', '3');
    expect([r.status, r.stderr]).toEqual([0, '']);
    expect(stateStep(out)).toBe(3);
    r = app('--out', out, '--resume', '--steps', '4');
    expect([r.status, r.stderr]).toEqual([
      2,
      `error: ${path.join(out, 'checkpoint')} is the checkpoint of a --task multimodal run; add --task multimodal to continue it\n`,
    ]);
    const classOut = path.join(root, 'c');
    expect(app(...classArgs(classOut, 1)).status).toBe(0);
    r = app('--task', 'multimodal', '--out', classOut, '--resume');
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(
      /^error: --resume: .* is not the checkpoint of a --task multimodal run; drop --task multimodal to continue a class-conditional run\n$/,
    );
  });
});

describe('a crash between the two renames of a checkpoint write (only checkpoint.old/ left)', () => {
  it('is still a run: a new run there is refused, and --resume continues from checkpoint.old/', async () => {
    const out = path.join(root, 'c');
    await train({ ...parseTrainArgs(classArgs(out, 1)), ...quiet });
    fs.renameSync(path.join(out, 'checkpoint'), path.join(out, 'checkpoint.old'));
    await expect(train({ ...parseTrainArgs(classArgs(out, 2)), ...quiet })).rejects.toThrow(/already holds a run .*add --resume/);
    await expect(train({ ...parseTrainArgs([...classArgs(out, 2), '--resume']), ...quiet })).resolves.toMatchObject({ step: 2, sessionSteps: 1 });
    expect(stateStep(out)).toBe(2);
    expect(fs.existsSync(path.join(out, 'checkpoint.old'))).toBe(false);
  });
});

describe('a negative number after a numeric flag', () => {
  const numeric = (table: Record<string, [string, string]>) =>
    Object.entries(table)
      .filter(([, [, kind]]) => kind === 'int' || kind === 'float')
      .map(([flag]) => flag);

  it("is the flag's value, refused with what the flag allows (class task: every numeric flag)", () => {
    expect(() => parseTrainArgs(['--out', 'o', '--steps', '-5'])).toThrow(/^--steps must be a positive integer, got -5$/);
    expect(() => parseTrainArgs(['--out', 'o', '--lr', '-1e-3'])).toThrow(/^--lr must be positive, got -0\.001$/);
    expect(() => parseTrainArgs(['--out', 'o', '--seed', '-1'])).toThrow(/^--seed must be an integer >= 0, got -1$/);
    expect(() => parseTrainArgs(['--out', 'o', '--beta1', '-.5'])).toThrow(/^--beta1 must be in \[0, 1\), got -0\.5$/);
    const flags = numeric(FLAGS);
    expect(flags.length).toBeGreaterThan(25);
    for (const flag of flags) {
      let message = 'accepted';
      try {
        parseTrainArgs(['--out', 'o', `--${flag}`, '-3']);
      } catch (e) {
        message = (e as Error).message;
      }
      expect([flag, message]).toEqual([flag, expect.stringMatching(new RegExp(`^--${flag} must be .*, got -3$`))]);
    }
  });

  it('multimodal task: every numeric flag', () => {
    expect(() => parseTrainCommand(['--task', 'multimodal', '--out', 'o', '--steps', '-5'])).toThrow(/^--steps must be a positive integer, got -5$/);
    const flags = numeric(MM_FLAGS);
    expect(flags.length).toBeGreaterThan(20);
    for (const flag of flags) {
      let message = 'accepted';
      try {
        parseMultimodalTrainArgs(['--task', 'multimodal', '--out', 'o', `--${flag}`, '-3']);
      } catch (e) {
        message = (e as Error).message;
      }
      expect([flag, message]).toEqual([flag, expect.stringMatching(new RegExp(`^--${flag} must be .*, got -3$`))]);
    }
  });

  it('is still not a value where the flag is missing one', () => {
    expect(() => parseTrainArgs(['--out', 'o', '--steps', '--lr', '1'])).toThrow(
      /^--steps is missing its value \(the next argument is a flag\) \(see causalfusion train --help\)$/,
    );
    expect(() => parseTrainArgs(['--out', 'o', '--steps'])).toThrow(/^Option '--steps <value>' argument missing \(see causalfusion train --help\)$/);
  });
});
