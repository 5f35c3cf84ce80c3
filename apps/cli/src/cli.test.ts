import { execFileSync, spawnSync } from 'child_process';
import * as path from 'path';

const CLI = path.resolve(__dirname, '../dist/cli.js');

describe('causalfusion CLI', () => {
  it('info prints the package map and the sampling schedule', () => {
    const out = execFileSync(process.execPath, [CLI, 'info'], { encoding: 'utf8' });
    expect(out).toMatch(/@causalfusion\/diffusion\s+ready/);
    expect(out).toMatch(/respaced to 250 \(model timesteps 999, 995, \.\.\., 0\)/);
  });
  it('a bad option is one line on stderr and exit code 2', () => {
    const r = spawnSync(process.execPath, [CLI, 'info', '--respacing', 'ddim333'], { encoding: 'utf8' });
    expect(r.status).toBe(2);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/^error: --respacing: .*no integer stride gives exactly 333/);
  });
  it('an unknown command exits 2', () => {
    const r = spawnSync(process.execPath, [CLI, 'frobnicate'], { encoding: 'utf8' });
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/unknown command 'frobnicate'/);
  });
  it('export model: a folder that is not a training run is one line, exit 2', () => {
    const r = spawnSync(process.execPath, [CLI, 'export', 'model', '--run', '/nonexistent/run', '--out', '/tmp/unused'], { encoding: 'utf8' });
    expect(r.status).toBe(2);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/^error: no training checkpoint in \/nonexistent\/run\/checkpoint; give the --out folder of a training run/);
  });
});
