#!/usr/bin/env node
// `pnpm bench:paper`: the paper's claims at small scale (arXiv 2412.12095, Tables 2, 3 and 6b, and the
// headline comparison), reproducible by one command. Every run is a config file in bench/paper/configs/:
//
//   kind "generate": a class-conditional model trained by `causalfusion train` (onnxruntime) with the config's
//     flags, exported to <runs>/<name>/model, then one classifier-feature FID cell per S_eval (./eval.mjs);
//   kind "finetune": `causalfusion finetune --task classify` of a generate run's model (or the same network
//     from scratch) on Fashion-MNIST with few labels; the cell is the test accuracy.
//
// Runs live OUTSIDE git in --runs-dir (default bench/paper/runs, ignored); results go to
// bench/paper/results/<name>.json (committed). A finished run is reused, an unfinished one resumed (its
// checkpoint), a finished cell is not recomputed (same evaluation settings), so the bench can be stopped
// (Ctrl-C: the training run in flight saves its checkpoint) and started again at any time.
//
//   pnpm bench:paper                      train and evaluate everything missing (hours), then print the tables
//   pnpm bench:paper --report             print the tables from the committed results only
//   pnpm bench:paper --only mnist-cf-seed0,ft-probe-cf-seed0   just those runs (and what they need)
//   pnpm bench:paper --smoke              the whole pipeline on tiny settings (minutes; results under the runs dir)
//   pnpm bench:paper --plan               list the runs and cells still to do, with an estimate of the time
//   pnpm bench:paper --jobs 2             runs side by side, one onnxruntime thread each (each run's log in the runs dir)
//
// The last line: `paper table2_random_spread=... table2_fixed4_spread=... headline_cf=... headline_dit=...
// probe_cf=... probe_dit=... probe_scratch=...`.
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { report } from './report.mjs';

const root = new URL('../..', import.meta.url).pathname;
const here = join(root, 'bench/paper');
const cli = join(root, 'apps/cli/dist/cli.js');

const { values: args } = parseArgs({
  options: {
    report: { type: 'boolean', default: false },
    smoke: { type: 'boolean', default: false },
    plan: { type: 'boolean', default: false },
    only: { type: 'string' },
    'runs-dir': { type: 'string' },
    results: { type: 'string' },
    threads: { type: 'string', default: '2' },
    // runs side by side: on 2 cores two one-thread runs make 1.5x the progress of one two-thread run (README)
    jobs: { type: 'string', default: '1' },
    samples: { type: 'string' },
    // a lane of --jobs: train and evaluate, print no tables
    'no-report': { type: 'boolean', default: false },
  },
});
const jobs = Number(args.jobs);
if (!Number.isInteger(jobs) || jobs < 1) {
  console.error(`--jobs must be a positive integer, got ${args.jobs}`);
  process.exit(2);
}

/** Evaluation settings of a FID cell (a stored cell with other settings is recomputed). */
const EVAL = args.smoke ? { num: 200, steps: 10, cfg: 2, batch: 100 } : { num: 5000, steps: 50, cfg: 2, batch: 250 };
if (args.samples) EVAL.num = Number(args.samples);

/** What --smoke changes in every run: the tiny preset, a few steps, small evaluations. */
const SMOKE_TRAIN = ['--preset', 'tiny', '--steps', '20', '--batch', '16', '--checkpoint-every', '10', '--sample-every', '1000000', '--log-every', '10'];
const SMOKE_FINETUNE = ['--steps', '20', '--labels', '100', '--eval-every', '10', '--eval-count', '200', '--checkpoint-every', '10', '--log-every', '10'];

const runsDir = resolve(args['runs-dir'] ?? join(here, args.smoke ? 'runs-smoke' : 'runs'));
const resultsDir = resolve(args.results ?? (args.smoke ? join(runsDir, 'results') : join(here, 'results')));

/** Every config, by name. */
function loadConfigs() {
  const dir = join(here, 'configs');
  const configs = new Map();
  for (const file of fs
    .readdirSync(dir)
    .filter((f) => f.endsWith('.json'))
    .sort()) {
    const c = JSON.parse(fs.readFileSync(join(dir, file), 'utf8'));
    if (c.name !== file.replace(/\.json$/, '')) throw new Error(`${file}: its name is ${c.name}; a config is named after its file`);
    if (c.kind !== 'generate' && c.kind !== 'finetune') throw new Error(`${file}: kind must be generate or finetune`);
    configs.set(c.name, c);
  }
  for (const c of configs.values()) if (c.kind === 'finetune' && !configs.has(c.init)) throw new Error(`${c.name}: init ${c.init} is not a config`);
  return configs;
}

const readJson = (file) => (fs.existsSync(file) ? JSON.parse(fs.readFileSync(file, 'utf8')) : null);
const resultFile = (name) => join(resultsDir, `${name}.json`);
function writeResult(name, result) {
  fs.mkdirSync(resultsDir, { recursive: true });
  fs.writeFileSync(resultFile(name) + '.tmp', JSON.stringify(result, null, 2) + '\n');
  fs.renameSync(resultFile(name) + '.tmp', resultFile(name));
}

/** Run the CLI; stop the bench when a run was interrupted (130 / 143) or failed. */
function runCli(argv) {
  console.error(`$ causalfusion ${argv.join(' ')}`);
  const r = spawnSync(process.execPath, [cli, ...argv], { stdio: 'inherit' });
  if (r.status !== 0) {
    console.error(`causalfusion ${argv[0]} stopped with exit status ${r.status ?? r.signal}; run pnpm bench:paper again to continue`);
    process.exit(r.status ?? 1);
  }
}

/** A config's training flags for this mode. */
function trainFlags(c) {
  return args.smoke
    ? [...c.flags.filter((f, i, a) => !(['--preset', '--steps'].includes(f) || ['--preset', '--steps'].includes(a[i - 1]))), ...SMOKE_TRAIN]
    : c.flags;
}
const stepsOf = (flags) => Number(flags[flags.lastIndexOf('--steps') + 1]);

/** Train (or resume, or reuse) a generate run; returns its model folder and meta.json. */
function trainRun(c) {
  const out = join(runsDir, c.name);
  const modelDir = join(out, 'model');
  const flags = trainFlags(c);
  const steps = stepsOf(flags);
  const meta = readJson(join(modelDir, 'meta.json'));
  if (meta?.training?.steps >= steps) return { modelDir, meta };
  const threads = ['--threads', args.threads];
  if (fs.existsSync(join(out, 'checkpoint', 'state.json')) || fs.existsSync(join(out, 'checkpoint.old', 'state.json'))) {
    const state = readJson(join(out, 'checkpoint', 'state.json')) ?? readJson(join(out, 'checkpoint.old', 'state.json'));
    if (state.step >= steps) runCli(['export', 'model', '--run', out, '--out', modelDir]);
    else runCli(['train', ...flags, ...threads, '--out', out, '--resume', '--export', modelDir]);
  } else {
    runCli(['train', ...flags, ...threads, '--out', out, '--export', modelDir]);
  }
  return { modelDir, meta: readJson(join(modelDir, 'meta.json')) };
}

function finetuneRun(c, configs) {
  const init = configs.get(c.init);
  const { modelDir } = trainRun(init);
  const out = join(runsDir, c.name);
  const exportDir = join(out, 'classifier');
  const flags = args.smoke
    ? [...c.flags.filter((f, i, a) => !(['--steps', '--labels'].includes(f) || ['--steps', '--labels'].includes(a[i - 1]))), ...SMOKE_FINETUNE]
    : c.flags;
  const steps = stepsOf(flags);
  let meta = readJson(join(exportDir, 'meta.json'));
  if (!(meta?.training?.steps >= steps)) {
    const resume = fs.existsSync(join(out, 'checkpoint', 'state.json')) || fs.existsSync(join(out, 'checkpoint.old', 'state.json'));
    runCli([
      'finetune',
      '--task',
      'classify',
      '--model',
      modelDir,
      ...flags,
      '--threads',
      args.threads,
      '--out',
      out,
      ...(resume ? ['--resume'] : []),
      '--export',
      exportDir,
    ]);
    meta = readJson(join(exportDir, 'meta.json'));
  }
  return meta;
}

/** Train and evaluate one config; its result is written as soon as each cell is done. */
async function runConfig(c, configs, evalModule) {
  const previous = readJson(resultFile(c.name));
  const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);
  if (c.kind === 'finetune') {
    if (previous?.accuracy !== undefined && same(previous.flags, c.flags) && !args.smoke) return;
    const meta = finetuneRun(c, configs);
    writeResult(c.name, {
      name: c.name,
      kind: c.kind,
      variant: c.variant,
      seed: c.seed,
      init: c.init,
      flags: c.flags,
      smoke: args.smoke,
      accuracy: meta.testAccuracy,
      testCount: meta.testCount,
      steps: meta.training.steps,
      wallSeconds: meta.training.wallSeconds,
    });
    console.error(`${c.name}: test accuracy ${(100 * meta.testAccuracy).toFixed(2)}%`);
    return;
  }
  const { modelDir, meta } = trainRun(c);
  const result =
    previous && same(previous.flags, c.flags) && previous.smoke === args.smoke
      ? previous
      : { name: c.name, kind: c.kind, variant: c.variant, seed: c.seed, flags: c.flags, smoke: args.smoke, cells: {} };
  result.training = { steps: meta.training.steps, wallSeconds: meta.training.wallSeconds };
  for (const s of c.sEval) {
    const key = `s${s}`;
    if (result.cells[key] && same(result.cells[key].settings, EVAL)) continue;
    const cell = await evalModule.fidCell(modelDir, meta, {
      arSteps: s,
      ...EVAL,
      seed: c.seed,
      threads: Number(args.threads),
      log: (l) => console.error(`${c.name} ${l}`),
    });
    result.cells[key] = { ...cell, settings: EVAL };
    writeResult(c.name, result);
    console.error(`${c.name} S_eval=${s}: FID ${cell.fid.toFixed(2)} (${cell.n} samples, ${cell.imagesPerSecond.toFixed(1)} images/s)`);
  }
  if (!result.floor || !same(result.floor.settings, EVAL)) {
    result.floor = { fid: await evalModule.floor(evalModule.tokenizerOf(meta).imageSize, EVAL.num), settings: EVAL };
  }
  writeResult(c.name, result);
}

const configs = loadConfigs();
let selected = [...configs.values()];
if (args.only) {
  const names = args.only.split(',');
  for (const n of names) if (!configs.has(n)) throw new Error(`--only: no config ${n} (bench/paper/configs/${n}.json)`);
  selected = selected.filter((c) => names.includes(c.name));
}

if (args.plan) {
  const todo = [];
  for (const c of selected) {
    const r = readJson(resultFile(c.name));
    if (c.kind === 'finetune') {
      if (r?.accuracy === undefined) todo.push(`${c.name}: fine-tune (${c.flags.join(' ')}) from ${c.init}`);
    } else {
      const missing = c.sEval.filter((s) => !r?.cells?.[`s${s}`]);
      if (!fs.existsSync(join(runsDir, c.name, 'model', 'meta.json'))) todo.push(`${c.name}: train (${c.flags.join(' ')})`);
      if (missing.length) todo.push(`${c.name}: FID cells S_eval ${missing.join(', ')} (${EVAL.num} samples each)`);
    }
  }
  console.log(todo.length ? todo.join('\n') : 'nothing to do: every run and cell has a result');
  process.exit(0);
}

/**
 * --jobs N: each config in a child bench (`--only NAME --no-report`, threads split between the lanes), its output
 * in <runs>/<name>.log; generate runs first, a fine-tune once the run it starts from is not in flight.
 */
async function runLanes(todo) {
  const threads = String(Math.max(1, Math.floor(Number(args.threads) / jobs)));
  const shared = ['--threads', threads, '--no-report', ...(args.smoke ? ['--smoke'] : []), ...(args.samples ? ['--samples', args.samples] : [])];
  if (args['runs-dir']) shared.push('--runs-dir', args['runs-dir']);
  if (args.results) shared.push('--results', args.results);
  const queue = [...todo.filter((c) => c.kind === 'generate'), ...todo.filter((c) => c.kind === 'finetune')];
  const inFlight = new Set();
  let failed = 0;
  fs.mkdirSync(runsDir, { recursive: true });
  const lane = async () => {
    for (;;) {
      const i = queue.findIndex((c) => c.kind === 'generate' || !inFlight.has(c.init));
      if (i < 0) {
        if (!queue.length) return;
        await new Promise((r) => setTimeout(r, 1000));
        continue;
      }
      const [c] = queue.splice(i, 1);
      inFlight.add(c.name);
      const log = join(runsDir, `${c.name}.log`);
      const started = Date.now();
      console.error(`${c.name}: started (log: ${log})`);
      const out = fs.openSync(log, 'a');
      const code = await new Promise((done) => {
        const child = spawn(process.execPath, [join(here, 'bench.mjs'), '--only', c.name, ...shared], { stdio: ['ignore', out, out] });
        child.on('exit', (status, signal) => done(status ?? (signal ? 128 : 1)));
      });
      fs.closeSync(out);
      inFlight.delete(c.name);
      const minutes = ((Date.now() - started) / 60000).toFixed(1);
      if (code !== 0) failed++;
      console.error(code === 0 ? `${c.name}: done in ${minutes} min` : `${c.name}: stopped with exit status ${code} after ${minutes} min (see ${log})`);
    }
  };
  await Promise.all(Array.from({ length: jobs }, lane));
  if (failed) {
    console.error(`${failed} run(s) stopped; run pnpm bench:paper again to continue`);
    process.exit(1);
  }
}

if (!args.report && jobs > 1) {
  await runLanes(selected);
} else if (!args.report) {
  // ./eval.mjs loads onnxruntime and the classifier; --report needs neither
  const evalModule = await import('./eval.mjs');
  for (const c of selected) {
    // training order: generate runs first, so fine-tunes find their models
    if (c.kind === 'generate') await runConfig(c, configs, evalModule);
  }
  for (const c of selected) if (c.kind === 'finetune') await runConfig(c, configs, evalModule);
}
if (args['no-report']) process.exit(0);

const results = fs.existsSync(resultsDir)
  ? fs
      .readdirSync(resultsDir)
      .filter((f) => f.endsWith('.json'))
      .map((f) => JSON.parse(fs.readFileSync(join(resultsDir, f), 'utf8')))
  : [];
report(results, JSON.parse(fs.readFileSync(join(here, 'paper.json'), 'utf8')), { smoke: args.smoke, resultsDir });
