/**
 * The recipes of deploy/: the Kubernetes manifests and the Slurm scripts parse and are wired to the one
 * shard script and the one merge script, and dry runs of both (the entry scripts run N times with the
 * index variables a scheduler sets, then the merge) give the unsharded run's images and FID.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { parseAllDocuments } from 'yaml';
import { readPartialNpz, savePartialNpz } from '@causalfusion/eval';
import { runCli, writeTinyModel, CLI } from './tiny-model.test-util';
import { expectOk, expectSameFiles, fidOf, runAsync, writeReferenceImages, type Ran } from './shard.test-util';

jest.setTimeout(180_000);

const ROOT = path.resolve(__dirname, '../../..');
const DEPLOY = path.join(ROOT, 'deploy');
const K8S = path.join(DEPLOY, 'kubernetes');
const SLURM = path.join(DEPLOY, 'slurm');

type Doc = any;

/** Every document of every .yaml under deploy/kubernetes, parsed (a YAML error fails the test). */
function manifests(): { file: string; doc: Doc }[] {
  const out: { file: string; doc: Doc }[] = [];
  for (const name of fs
    .readdirSync(K8S)
    .filter((f) => /\.ya?ml$/.test(f))
    .sort()) {
    for (const d of parseAllDocuments(fs.readFileSync(path.join(K8S, name), 'utf8'))) {
      expect({ file: name, errors: d.errors.map((e) => e.message) }).toEqual({ file: name, errors: [] });
      if (d.contents !== null) out.push({ file: name, doc: d.toJS() });
    }
  }
  return out;
}

function envOf(container: Doc): Record<string, string> {
  const env: Record<string, string> = {};
  for (const e of container.env ?? []) {
    expect(typeof e.value).toBe('string'); // Kubernetes takes strings only: "4", not 4
    env[e.name] = e.value;
  }
  return env;
}

function job(name: string): { spec: Doc; container: Doc; env: Record<string, string> } {
  const found = manifests().filter(({ doc }) => doc.kind === 'Job' && doc.metadata?.name === name);
  expect(found).toHaveLength(1);
  const { spec } = found[0].doc;
  expect(spec.template.spec.containers).toHaveLength(1);
  const container = spec.template.spec.containers[0];
  return { spec, container, env: envOf(container) };
}

/** `#SBATCH --key=value` lines of a batch script. */
function sbatchOptions(file: string): Record<string, string> {
  const options: Record<string, string> = {};
  for (const m of fs.readFileSync(file, 'utf8').matchAll(/^#SBATCH\s+--([\w-]+)(?:[= ](\S+))?/gm)) options[m[1]] = m[2] ?? '';
  return options;
}

let tmp: string;
let model: string;
let realStats: string;
/** The flags every shard samples with here (tiny: 150 images, 4 steps), and the unsharded run's results. */
const SAMPLE_ARGS = '--num 15 --steps 4 --ar-steps 2 --order random --seed 3 --threads 1';
let full: string;
let unshardedFid: number;

beforeAll(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cli-deploy-'));
  model = path.join(tmp, 'model');
  await writeTinyModel(model);
  const realDir = path.join(tmp, 'real');
  await writeReferenceImages(realDir, 200);
  realStats = path.join(tmp, 'real.npz');
  expectOk(runCli(['eval', 'fid', '--real', realDir, '--save-stats', realStats]));
  full = path.join(tmp, 'full');
  expectOk(runCli(['sample', '--model', model, ...SAMPLE_ARGS.split(' '), '--out-dir', full]));
  unshardedFid = fidOf(runCli(['eval', 'fid', '--real', realStats, '--fake', full, '--features', 'mnist', '--json']));
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** The environment of a dry run: the scheduler's variables over ours, with the CLI of this checkout. */
function envWith(vars: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, CF_CLI: `${process.execPath} ${CLI}` };
  for (const k of ['SHARD_INDEX', 'SHARD_COUNT', 'JOB_COMPLETION_INDEX', 'CF_WORK', 'CF_MODEL', 'CF_REAL', 'CF_SAMPLE_ARGS', 'CF_FEATURES', 'CF_EVAL_ARGS'])
    delete env[k];
  for (const k of Object.keys(env)) if (k.startsWith('SLURM_')) delete env[k];
  return { ...env, ...vars };
}

/** The dry run's result against the unsharded run: the same files, the same FID (to 1e-9). */
function expectUnshardedResult(work: string, merge: Ran): void {
  expectOk(merge);
  expectSameFiles(full, path.join(work, 'samples'));
  const written = JSON.parse(fs.readFileSync(path.join(work, 'fid.json'), 'utf8')) as { fid: number; fake: { count: number } };
  expect(fidOf(merge)).toBe(written.fid);
  expect(written.fake.count).toBe(150);
  expect(Math.abs(written.fid - unshardedFid)).toBeLessThan(1e-9);
  expect(fs.existsSync(path.join(work, 'fake-stats.npz'))).toBe(true);
}

describe('deploy/kubernetes', () => {
  it('the manifests parse; the Indexed Job and the merge Job are wired to the shard and merge scripts', () => {
    const all = manifests();
    expect(all.map(({ file, doc }) => `${file}: ${doc.kind}`)).toEqual(['merge-job.yaml: Job', 'shards-job.yaml: Job', 'volume.yaml: PersistentVolumeClaim']);
    const pvc = all.find(({ doc }) => doc.kind === 'PersistentVolumeClaim')!.doc;
    expect(pvc.spec.accessModes).toEqual(['ReadWriteMany']); // pods on several nodes write one folder

    const shards = job('causalfusion-shards');
    const merge = job('causalfusion-merge');
    expect(shards.spec.completionMode).toBe('Indexed');
    expect(shards.spec.completions).toBeGreaterThan(1);
    expect(shards.spec.parallelism).toBeGreaterThanOrEqual(1);
    expect(shards.spec.parallelism).toBeLessThanOrEqual(shards.spec.completions);
    // N shards = the completions (the index JOB_COMPLETION_INDEX runs 0 .. completions - 1), in both Jobs
    expect(shards.env.SHARD_COUNT).toBe(String(shards.spec.completions));
    expect(merge.env.SHARD_COUNT).toBe(shards.env.SHARD_COUNT);
    expect(merge.spec.completionMode ?? 'NonIndexed').toBe('NonIndexed');
    expect(merge.spec.completions ?? 1).toBe(1);
    expect(shards.container.command).toEqual(['/app/deploy/shard.sh']);
    expect(merge.container.command).toEqual(['/app/deploy/merge.sh']);
    expect(fs.readFileSync(path.join(DEPLOY, 'shard.sh'), 'utf8')).toMatch(/\$JOB_COMPLETION_INDEX/);
    for (const j of [shards, merge]) {
      expect(j.container.image).toBe(shards.container.image);
      expect(j.spec.template.spec.restartPolicy).toBe('Never');
      // the shared folder: CF_WORK lies on the volume, which is the claim of volume.yaml
      expect(j.env.CF_WORK).toBe(shards.env.CF_WORK);
      expect(j.env.CF_FEATURES).toBe(shards.env.CF_FEATURES);
      const mounts = j.container.volumeMounts as { name: string; mountPath: string }[];
      const mount = mounts.find((m) => j.env.CF_WORK.startsWith(`${m.mountPath}/`));
      expect(mount).toBeDefined();
      const volume = (j.spec.template.spec.volumes as Doc[]).find((v) => v.name === mount!.name);
      expect(volume.persistentVolumeClaim.claimName).toBe(pvc.metadata.name);
    }
    expect(merge.env.CF_REAL).toMatch(/^\/work\//);
    expect(shards.env.CF_MODEL).toMatch(/^\/work\//);
  });

  it('the container build file: node:20, pnpm install --frozen-lockfile, pnpm build, the scripts at /app/deploy', () => {
    const dockerfile = fs.readFileSync(path.join(K8S, 'Dockerfile'), 'utf8');
    const lines = dockerfile.split('\n').filter((l) => !l.startsWith('#'));
    expect(lines.find((l) => l.startsWith('FROM '))).toMatch(/^FROM node:20(-[\w-]+)?$/);
    expect(dockerfile).toMatch(/^WORKDIR \/app$/m);
    expect(dockerfile).toMatch(/^COPY \. \.$/m);
    expect(dockerfile).toMatch(/pnpm install --frozen-lockfile/);
    expect(dockerfile).toMatch(/pnpm build/);
    const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'));
    expect(dockerfile).toContain(pkg.packageManager); // the pnpm the lockfile was written with
    expect(fs.readFileSync(path.join(K8S, 'Dockerfile.dockerignore'), 'utf8')).toMatch(/^\*\*\/node_modules$/m);
    for (const script of ['shard.sh', 'merge.sh']) expect(fs.statSync(path.join(DEPLOY, script)).mode & 0o111).not.toBe(0);
  });

  it("dry run: shard.sh once per JOB_COMPLETION_INDEX with the Job's env, then merge.sh = the unsharded run", async () => {
    const shards = job('causalfusion-shards');
    const merge = job('causalfusion-merge');
    const n = shards.spec.completions as number;
    const work = path.join(tmp, 'k8s');
    // the manifests' settings, with the paths of the volume (/work) mapped to this machine and a small run
    const local = { CF_WORK: work, CF_MODEL: model, CF_SAMPLE_ARGS: SAMPLE_ARGS, CF_REAL: realStats };
    const script = (command: string[]) => path.join(ROOT, command[0].replace(/^\/app\//, ''));
    const runs = await Promise.all(
      Array.from({ length: n }, (_, i) =>
        runAsync(script(shards.container.command), [], envWith({ ...shards.env, ...local, JOB_COMPLETION_INDEX: String(i) })),
      ),
    );
    runs.forEach(expectOk);
    expect(runs[n - 1].stdout).toMatch(new RegExp(`^shard ${n - 1}/${n}: wrote \\d+ images`, 'm'));
    expect(fs.readdirSync(path.join(work, 'parts')).sort()).toEqual(Array.from({ length: n }, (_, i) => `part-${i}.npz`));
    const merged = await runAsync(script(merge.container.command), [], envWith({ ...merge.env, ...local }));
    expectUnshardedResult(work, merged);
  });
});

describe('deploy/slurm', () => {
  it('dry run: shards.sbatch once per SLURM_ARRAY_TASK_ID, then merge.sbatch = the unsharded run', async () => {
    const array = sbatchOptions(path.join(SLURM, 'shards.sbatch')).array;
    const m = /^(\d+)-(\d+)$/.exec(array);
    expect(m).not.toBeNull();
    const [min, max] = [Number(m![1]), Number(m![2])];
    const n = max - min + 1;
    const work = path.join(tmp, 'slurm');
    const slurm = (i: number) => ({
      SLURM_ARRAY_JOB_ID: '4242',
      SLURM_ARRAY_TASK_ID: String(i),
      SLURM_ARRAY_TASK_MIN: String(min),
      SLURM_ARRAY_TASK_MAX: String(max),
      SLURM_ARRAY_TASK_COUNT: String(n),
      SLURM_SUBMIT_DIR: ROOT,
      SLURM_CPUS_PER_TASK: '1',
    });
    const local = { CF_WORK: work, CF_MODEL: model, CF_SAMPLE_ARGS: SAMPLE_ARGS };
    // sbatch runs a copy of the script from its spool folder: run one from elsewhere too
    const spool = path.join(tmp, 'spool');
    fs.mkdirSync(spool);
    fs.copyFileSync(path.join(SLURM, 'shards.sbatch'), path.join(spool, 'slurm_script'));
    const runs = await Promise.all(
      Array.from({ length: n }, (_, k) => runAsync('bash', [path.join(spool, 'slurm_script')], envWith({ ...slurm(min + k), ...local }), tmp)),
    );
    runs.forEach(expectOk);
    const merged = await runAsync(
      'bash',
      [path.join(SLURM, 'merge.sbatch')],
      envWith({ ...local, CF_REAL: realStats, SHARD_COUNT: String(n), SLURM_SUBMIT_DIR: ROOT }),
      tmp,
    );
    expectUnshardedResult(work, merged);

    // a resubmitted task (SHARD_COUNT=N sbatch --array=2): the same shard, the same statistics
    const part = path.join(work, 'parts', 'part-2.npz');
    const before = readPartialNpz(part);
    fs.rmSync(part);
    const again = await runAsync(
      'bash',
      [path.join(spool, 'slurm_script')],
      envWith({ ...slurm(2), SLURM_ARRAY_TASK_MIN: '2', SLURM_ARRAY_TASK_MAX: '2', SLURM_ARRAY_TASK_COUNT: '1', SHARD_COUNT: String(n), ...local }),
      tmp,
    );
    expectOk(again);
    expect(again.stdout).toMatch(new RegExp(`^shard 2/${n}: wrote`, 'm'));
    expect(readPartialNpz(part)).toEqual(before);
  });

  it('submit.sh queues the array and the merge with --dependency=afterok on it', async () => {
    const bin = path.join(tmp, 'bin');
    fs.mkdirSync(bin);
    const log = path.join(tmp, 'sbatch.log');
    // a stand-in sbatch: records its arguments, answers --parsable with a job id (and a cluster name)
    fs.writeFileSync(path.join(bin, 'sbatch'), `#!/usr/bin/env bash\necho "$*" >> ${log}\necho "$((1000 + $(wc -l < ${log})));cluster"\n`, { mode: 0o755 });
    const r = await runAsync('bash', [path.join(SLURM, 'submit.sh'), '6'], envWith({ PATH: `${bin}:${process.env.PATH}`, CF_REAL: realStats }), tmp);
    expectOk(r);
    expect(fs.readFileSync(log, 'utf8').trim().split('\n')).toEqual([
      '--parsable --array=0-5 --export=ALL,SHARD_COUNT=6 deploy/slurm/shards.sbatch',
      '--parsable --dependency=afterok:1001 --export=ALL,SHARD_COUNT=6 deploy/slurm/merge.sbatch',
    ]);
    expect(r.stdout).toMatch(/^shards: array job 1001 \(0-5\); merge: job 1002/);
    for (const file of ['shards.sbatch', 'merge.sbatch']) expect(sbatchOptions(path.join(SLURM, file))['job-name']).toMatch(/^cf-/);
  });
});

describe('the shared entry scripts', () => {
  it('refuse a missing or bad index or count, and a merge with no parts, with exit code 2', async () => {
    const shard = path.join(DEPLOY, 'shard.sh');
    const cases: [Record<string, string>, RegExp][] = [
      [{ SHARD_COUNT: '2', CF_WORK: tmp }, /no shard index: set JOB_COMPLETION_INDEX/],
      [{ JOB_COMPLETION_INDEX: '0', CF_WORK: tmp }, /no shard count: set SHARD_COUNT/],
      [{ JOB_COMPLETION_INDEX: '2', SHARD_COUNT: '2', CF_WORK: tmp }, /shard index 2 is not below the shard count 2/],
      [{ SLURM_ARRAY_TASK_ID: '3', SLURM_ARRAY_TASK_COUNT: '3', CF_WORK: tmp }, /shard index 3 is not below the shard count 3/],
      [{ SHARD_INDEX: 'x', SHARD_COUNT: '3', CF_WORK: tmp }, /shard x\/3 is not two numbers/],
    ];
    for (const [vars, message] of cases) {
      const r = await runAsync(shard, [], envWith(vars));
      expect(r.stderr).toMatch(message);
      expect(r.status).toBe(2);
    }
    const empty = path.join(tmp, 'empty');
    fs.mkdirSync(empty);
    const r = await runAsync(path.join(DEPLOY, 'merge.sh'), [], envWith({ CF_WORK: empty, CF_REAL: realStats, SHARD_COUNT: '3' }));
    expect(r.stderr).toMatch(/no parts in .*empty\/parts; run deploy\/shard\.sh for every shard first/);
    expect(r.status).toBe(2);
    // shard 2 of 3 never finished: eval merge's one line and exit code, and no fid.json
    const some = path.join(tmp, 'some');
    fs.mkdirSync(path.join(some, 'parts'), { recursive: true });
    for (const i of [0, 1]) {
      const part = { dim: 2, count: 1, mean: Float64Array.of(i, 1), m2: new Float64Array(4) };
      savePartialNpz(path.join(some, 'parts', `part-${i}.npz`), part, { index: i, count: 3, total: 3, features: 'mnist-classifier-fc1' });
    }
    const missing = await runAsync(path.join(DEPLOY, 'merge.sh'), [], envWith({ CF_WORK: some, CF_REAL: realStats, SHARD_COUNT: '3' }));
    expect(missing.stderr.trim()).toMatch(/^error: shard 2 of 3 missing \(2 parts given\)/);
    expect(missing.status).toBe(2);
    expect(fs.readdirSync(some)).toEqual(['parts']);
  });
});
