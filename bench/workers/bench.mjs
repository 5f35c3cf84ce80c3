#!/usr/bin/env node
// Data-parallel scaling of the training app: the `mnist` preset (the shipped model's recipe: 16 tokens
// of 16 values, width 128, 4 blocks, batch 64) trained on the tfjs runtime with `--workers 1` and `--workers 2`, runs
// alternating so that both see the same machine load. Each run is a fresh `causalfusion train` of
// STEPS steps with sampling and checkpoints off; its speed is read from log.csv (wall time between
// step 10 and the last step, so start-up and warm-up are left out). Each side keeps its median run.
// Run from the repository root: `pnpm bench:workers`. Last line: `workers speedup=<2-worker / 1-worker steps/s>`.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const root = new URL('../..', import.meta.url).pathname;
const STEPS = Number(process.env.BENCH_STEPS ?? 60);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const WORKERS = [1, 2];
const SKIP = 10;

function run(workers) {
  const out = mkdtempSync(join(tmpdir(), `cf-bench-workers-${workers}-`));
  try {
    const args = [
      'apps/cli/dist/cli.js',
      'train',
      '--preset',
      'mnist',
      '--out',
      out,
      '--runtime',
      'tfjs',
      '--workers',
      String(workers),
      '--steps',
      String(STEPS),
      '--sample-every',
      String(STEPS + 1),
      '--checkpoint-every',
      String(STEPS + 1),
      '--log-every',
      String(STEPS),
    ];
    const r = spawnSync(process.execPath, args, { cwd: root, encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`causalfusion train --workers ${workers} failed:\n${r.stderr || r.stdout}`);
    // log.csv: step,loss,grad_norm,lr,ema_decay,steps_per_s,wall_s
    const rows = readFileSync(join(out, 'log.csv'), 'utf8')
      .trim()
      .split('\n')
      .slice(1)
      .map((l) => l.split(',').map(Number));
    const wallAt = (step) => rows.find((row) => row[0] === step)[6];
    return (STEPS - SKIP) / (wallAt(STEPS) - wallAt(SKIP));
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)];
if (STEPS <= SKIP) throw new Error(`BENCH_STEPS must be above ${SKIP}`);
const speeds = Object.fromEntries(WORKERS.map((w) => [w, []]));
console.log(`mnist preset, ${STEPS}-step runs (steps ${SKIP + 1}-${STEPS} timed), ${ROUNDS} rounds, workers ${WORKERS.join(' / ')} alternating`);
for (let round = 1; round <= ROUNDS; round++) {
  for (const w of WORKERS) {
    const s = run(w);
    speeds[w].push(s);
    console.log(`round ${round}  workers ${w}  ${s.toFixed(3)} steps/s`);
  }
}
console.log('\n| workers | steps/s (median) | runs | vs 1 worker |');
console.log('|---|---|---|---|');
for (const w of WORKERS) {
  console.log(
    `| ${w} | ${median(speeds[w]).toFixed(3)} | ${speeds[w].map((s) => s.toFixed(2)).join(', ')} | ${(median(speeds[w]) / median(speeds[1])).toFixed(2)}x |`,
  );
}
console.log(`workers speedup=${(median(speeds[2]) / median(speeds[1])).toFixed(2)}`);
