#!/usr/bin/env node
// `pnpm fuzz`: the parser fuzz tests of every package (src/**/*.fuzz.test.ts, src/fuzz.test.ts) and the
// BPE round trip (src/roundtrip.test.ts), run longer than `pnpm test` runs them: see test-utils/fuzz.ts.
//
//   pnpm fuzz [--seconds S] [--cases N] [--seed X] [--only TEXT] [--hang S]
//
//   --seconds S  time budget per parser (default 30; ignored when --cases is given)
//   --cases N    cases per parser instead of a time budget
//   --seed X     another seed than the tests' (a new set of cases)
//   --only TEXT  only the packages whose folder contains TEXT (e.g. --only bpe)
//   --hang S     a case running longer than S seconds is a hang: the run is stopped and the case named
//                (default 60)
//
// The BPE round trip always runs its 100,000 strings (unless --cases says otherwise). Prints the cases
// tried per parser and one summary line; exits 1 when any case failed or hung.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const args = process.argv.slice(2);
const flag = (name, fallback) => {
  const i = args.indexOf(`--${name}`);
  if (i < 0) return fallback;
  const v = args[i + 1];
  if (v === undefined || v.startsWith('--')) fail(`--${name} needs a value`);
  return v;
};
function fail(message) {
  console.error(`fuzz: ${message}`);
  process.exit(2);
}
const known = new Set(['--seconds', '--cases', '--seed', '--only', '--hang']);
for (let i = 0; i < args.length; i += 2)
  if (!known.has(args[i])) fail(`unknown argument '${args[i]}'; use --seconds S, --cases N, --seed X, --only TEXT, --hang S`);
const positive = (name, v) => {
  if (v === undefined) return undefined;
  if (!/^\d+$/.test(v) || Number(v) < 1) fail(`--${name} must be a positive integer, got '${v}'`);
  return Number(v);
};
const cases = positive('cases', flag('cases'));
const seconds = cases === undefined ? positive('seconds', flag('seconds', '30')) : undefined;
const hang = positive('hang', flag('hang', '60'));
const seed = flag('seed');
const only = flag('only');

// Packages with fuzz tests, and those tests.
const isFuzzTest = (f) => /(^|[./])fuzz\.test\.ts$/.test(f) || f.endsWith('roundtrip.test.ts');
const walk = (dir) => readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(join(dir, e.name)) : [join(dir, e.name)]));
const suites = ['packages', 'apps']
  .flatMap((d) => readdirSync(join(root, d)).map((p) => join(root, d, p)))
  .filter((dir) => existsSync(join(dir, 'src')) && (!only || relative(root, dir).includes(only)))
  .map((dir) => ({ dir, files: walk(join(dir, 'src')).filter(isFuzzTest) }))
  .filter((s) => s.files.length > 0);
if (suites.length === 0) fail(`no fuzz tests${only ? ` in packages matching '${only}'` : ''}`);

const names = suites.map((s) => JSON.parse(readFileSync(join(s.dir, 'package.json'), 'utf8')).name);
console.log(`fuzz: ${cases !== undefined ? `${cases} cases` : `${seconds} s`} per parser${seed ? `, seed ${seed}` : ''}: ${names.join(', ')}`);
const build = spawnSync('pnpm', ['turbo', 'run', 'build', ...names.flatMap((n) => ['--filter', `${n}...`]), '--output-logs=errors-only'], {
  cwd: root,
  stdio: 'inherit',
  env: { ...process.env, TURBO_TELEMETRY_DISABLED: '1' },
});
if (build.status !== 0) fail('the build failed');

const work = mkdtempSync(join(tmpdir(), 'cf-fuzz-'));
const reportFile = join(work, 'report.jsonl');
const progressFile = join(work, 'progress.txt');
const hangs = [];
const crashed = [];
const t0 = Date.now();

for (const [k, { dir, files }] of suites.entries()) {
  const env = {
    ...process.env,
    CF_FUZZ: '1',
    CF_FUZZ_REPORT: reportFile,
    CF_FUZZ_PROGRESS: progressFile,
    ...(cases !== undefined ? { CF_FUZZ_CASES: String(cases) } : { CF_FUZZ_SECONDS: String(seconds) }),
    ...(seed ? { CF_FUZZ_SEED: seed } : {}),
  };
  rmSync(progressFile, { force: true });
  const started = Date.now();
  const child = spawn('npx', ['jest', '--ci', '--runInBand', ...files.map((f) => relative(dir, f))], { cwd: dir, env, detached: true });
  let output = '';
  child.stdout.on('data', (d) => (output += d));
  child.stderr.on('data', (d) => (output += d));
  // Hang watch: the progress file is rewritten as each case starts; no new case for --hang seconds
  // (after a minute's grace for jest to start) is a hang, and the file names the case.
  let hung = null;
  const watch = setInterval(() => {
    const last = existsSync(progressFile) ? statSync(progressFile).mtimeMs : started + 60_000;
    if (Date.now() - last > hang * 1000) {
      hung = existsSync(progressFile) ? readFileSync(progressFile, 'utf8').trim() : `${names[k]}: no case started`;
      process.kill(-child.pid, 'SIGKILL');
    }
  }, 1000);
  const status = await new Promise((resolve) => child.on('close', (code) => resolve(code)));
  clearInterval(watch);
  if (hung) {
    hangs.push(`${names[k]}: no progress for ${hang} s during ${hung}`);
    console.log(output.split('\n').slice(-40).join('\n'));
  } else if (status !== 0) {
    crashed.push(names[k]);
    console.log(output.split('\n').slice(-80).join('\n'));
  }
  console.log(`  ${names[k]}: ${((Date.now() - started) / 1000).toFixed(0)} s${hung ? ' (HUNG)' : status !== 0 ? ' (tests failed)' : ''}`);
}

const reports = existsSync(reportFile)
  ? readFileSync(reportFile, 'utf8')
      .trim()
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l))
  : [];
rmSync(work, { recursive: true, force: true });
const pad = (s, n) => String(s).padEnd(n);
const padL = (s, n) => String(s).padStart(n);
console.log(
  `\n${pad('parser', 46)}${padL('cases', 9)}${padL('parsed', 9)}${padL('errors', 9)}${padL('failed', 8)}${padL('seconds', 9)}${padL('slowest ms', 12)}`,
);
for (const r of reports) {
  console.log(
    `${pad(r.name, 46)}${padL(r.cases, 9)}${padL(r.parsed, 9)}${padL(r.rejected, 9)}${padL(r.failures, 8)}${padL((r.ms / 1000).toFixed(1), 9)}${padL(r.slowestMs, 12)}`,
  );
}
const total = reports.reduce((n, r) => n + r.cases, 0);
const failures = reports.reduce((n, r) => n + r.failures, 0);
const failing = reports.filter((r) => r.failures > 0).map((r) => r.name);
for (const h of hangs) console.log(`HANG ${h}`);
console.log(
  `fuzz: ${total} cases over ${reports.length} parsers in ${((Date.now() - t0) / 1000).toFixed(0)} s: ${failures} failed${failing.length ? ` (${failing.join(', ')})` : ''}, ` +
    `${hangs.length} hung${crashed.length ? `; failing test suites: ${crashed.join(', ')}` : ''}`,
);
process.exit(failures > 0 || hangs.length > 0 || crashed.length > 0 ? 1 : 0);
