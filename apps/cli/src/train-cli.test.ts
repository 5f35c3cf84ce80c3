/**
 * `causalfusion train` edge cases through the CLI: a run stopped by Ctrl-C / SIGTERM exits 130 / 143 after
 * saving its checkpoint; --resume with nothing left to do exits 0 saying so; a --preset that differs from
 * the checkpoint and a negative --steps are one line, exit 2.
 */
import { spawn, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { tinyClassArgs } from '../../../test-utils/tiny-training';

jest.setTimeout(60_000);

const CLI = path.resolve(__dirname, '../dist/cli.js');
const cli = (...args: string[]) => spawnSync(process.execPath, [CLI, 'train', ...args], { encoding: 'utf8' });

let tmp: string;
beforeEach(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cf-train-cli-'));
});
afterEach(() => fs.rmSync(tmp, { recursive: true, force: true }));

const tiny = tinyClassArgs;
const stateStep = (out: string) => JSON.parse(fs.readFileSync(path.join(out, 'checkpoint', 'state.json'), 'utf8')).step as number;

describe('causalfusion train', () => {
  it.each([
    ['SIGINT', 130],
    ['SIGTERM', 143],
  ] as const)('stopped by %s: saves a checkpoint and exits %d', async (signal, code) => {
    const out = path.join(tmp, 'run');
    const r = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
      const child = spawn(process.execPath, [CLI, 'train', ...tiny(out, 500), '--log-every', '1', '--checkpoint-every', '1000']);
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d: Buffer) => {
        const first = !/^step \d+\/500 /m.test(stdout);
        stdout += d;
        if (first && /^step \d+\/500 /m.test(stdout)) child.kill(signal);
      });
      child.stderr.on('data', (d: Buffer) => (stderr += d));
      child.on('exit', (c) => resolve({ code: c, stdout, stderr }));
    });
    expect([r.code, r.stderr]).toEqual([code, '']);
    const step = Number(/stopped at step (\d+): checkpoint saved/.exec(r.stdout)?.[1]);
    expect(stateStep(out)).toBe(step);
  });

  it('--resume with nothing left to do says so and exits 0; a differing --preset or a negative --steps is one line, exit 2', () => {
    const out = path.join(tmp, 'run');
    expect(cli(...tiny(out, 1)).status).toBe(0);
    let r = cli(...tiny(out, 1), '--resume');
    expect([r.status, r.stderr, r.stdout]).toEqual([
      0,
      '',
      `nothing left to do: the run in ${out} is already at step 1 (--steps 1); raise --steps above 1 to train longer\n`,
    ]);
    r = cli('--preset', 'mnist', '--out', out, '--resume', '--steps', '2');
    expect([r.status, r.stdout]).toEqual([2, '']);
    expect(r.stderr).toMatch(
      /^error: --resume keeps the run's settings, and these differ \(checkpoint vs given\): imageSize 28 vs 16, .*\(--preset mnist\)\. [^\n]*\n$/,
    );
    r = cli('--out', out, '--resume', '--steps', '-5');
    expect([r.status, r.stdout, r.stderr]).toEqual([2, '', 'error: --steps must be a positive integer, got -5\n']);
    expect(stateStep(out)).toBe(1);
    r = cli('--out', out, '--resume', '--steps', '2');
    expect([r.status, r.stderr]).toEqual([0, '']);
    expect(stateStep(out)).toBe(2);
  });
});
