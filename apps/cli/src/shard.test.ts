/**
 * Sharded sampling and evaluation through the CLI, each shard its own process (as a scheduler runs them):
 * the shards' files are the unsharded run's byte for byte, and the merged FID is the unsharded one.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { readNpz, savePartialNpz } from '@causalfusion/eval';
import { runCli, writeTinyModel } from './tiny-model.test-util';
import { expectOk, expectSameFiles, fidOf, runCliAsync, writeReferenceImages } from './shard.test-util';

jest.setTimeout(180_000);

let tmp: string;
let model: string;
let realDir: string;
let realStats: string;
/** 10 classes x 15 = 150 images: more than the 128 FID-MNIST features, so the FID is well conditioned. */
let args: string[];

beforeAll(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cli-shard-'));
  model = path.join(tmp, 'model');
  await writeTinyModel(model);
  args = ['sample', '--model', model, '--num', '15', '--steps', '4', '--ar-steps', '2', '--order', 'random', '--threads', '1'];
  realDir = path.join(tmp, 'real');
  await writeReferenceImages(realDir, 200);
  realStats = path.join(tmp, 'real.npz');
  expectOk(runCli(['eval', 'fid', '--real', realDir, '--save-stats', realStats]));
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

function oneLineError(r: { status: number | null; stderr: string }, message: RegExp): void {
  expect(r.stderr.trim()).toMatch(message);
  expect(r.stderr.trim().split('\n')).toHaveLength(1);
  expect(r.status).toBe(2);
}

describe('sample --out-dir --shard i/N and eval fid --shard i/N --save-partial + eval merge', () => {
  it('3 shard processes: the same files byte for byte as one process, the same FID to 1e-9', async () => {
    const full = path.join(tmp, 'full');
    const sharded = path.join(tmp, 'sharded');
    // one process, other batches, and its rows split over 2 onnxruntimes (--threads 2)
    const whole = runCli([...args, '--out-dir', full, '--batch-size', '16', '--threads', '2']);
    expectOk(whole);
    expect(whole.stdout).toMatch(/^wrote 150 images 000000\.png \.\. 000149\.png of 150 \(10 classes x 15; classes 0, 1, .*seed 0 \(one per image\)/);
    const shards = await Promise.all([0, 1, 2].map((i) => runCliAsync([...args, '--out-dir', sharded, '--shard', `${i}/3`])));
    shards.forEach(expectOk);
    expect(shards.map((r) => r.stdout.trim().split(' (')[0])).toEqual([
      'shard 0/3: wrote 50 images 000000.png .. 000049.png of 150',
      'shard 1/3: wrote 50 images 000050.png .. 000099.png of 150',
      'shard 2/3: wrote 50 images 000100.png .. 000149.png of 150',
    ]);
    // 150 PNGs and the run's record, the same names and bytes
    const compared = expectSameFiles(full, sharded);
    expect(compared.files).toBe(151);

    const unsharded = runCli(['eval', 'fid', '--real', realStats, '--fake', full, '--features', 'mnist', '--json']);
    const parts = path.join(tmp, 'parts');
    const evals = await Promise.all(
      [0, 1, 2].map((i) =>
        runCliAsync(['eval', 'fid', '--fake', sharded, '--shard', `${i}/3`, '--features', 'mnist', '--save-partial', path.join(parts, `part-${i}.npz`)]),
      ),
    );
    evals.forEach(expectOk);
    expect(evals[1].stdout).toMatch(
      /^saved the partial statistics of shard 1\/3 \(50 of 150 images: 000050\.png \.\. 000099\.png; 128-d mnist-classifier-fc1 features\)/,
    );
    const partFiles = [2, 0, 1].map((i) => path.join(parts, `part-${i}.npz`)); // any order
    const merged = runCli(['eval', 'merge', ...partFiles, '--real', realStats, '--json']);
    const difference = Math.abs(fidOf(merged) - fidOf(unsharded));
    expect(difference).toBeLessThan(1e-9);
    expect(JSON.parse(merged.stdout)).toMatchObject({ features: 'mnist-classifier-fc1', fake: { count: 150 } });

    // the plain output is eval fid's (less the Inception Score, which does not merge); --real as a folder
    const text = runCli(['eval', 'merge', ...partFiles, '--real', realDir, '--save-stats', path.join(tmp, 'merged.npz')]);
    expectOk(text);
    const plain = runCli(['eval', 'fid', '--real', realDir, '--fake', full]);
    const fidLine = (s: string) => Number(/^FID: (\S+)$/m.exec(s)![1]);
    expect(Math.abs(fidLine(text.stdout) - fidLine(plain.stdout))).toBeLessThan(1e-9);
    expect(text.stdout).toMatch(/^FID: \S+\nIS \(real\): \S+\n$/);
    // the merged statistics saved as pytorch-fid .npz give the same FID again
    const again = runCli(['eval', 'fid', '--real', realStats, '--fake', path.join(tmp, 'merged.npz'), '--json']);
    expect(Math.abs(fidOf(again) - fidOf(unsharded))).toBeLessThan(1e-9);
  });

  it('a folder without a sample record is split by its sorted files; empty shards are fine', async () => {
    // the 200 reference images as the folder to shard, in 4 shards; the sampled folder as the reference
    const reference = path.join(tmp, 'full');
    const parts = await Promise.all(
      [0, 1, 2, 3].map(async (i) => {
        const file = path.join(tmp, 'sorted-parts', `part-${i}.npz`);
        expectOk(await runCliAsync(['eval', 'fid', '--fake', realDir, '--shard', `${i}/4`, '--save-partial', file]));
        return file;
      }),
    );
    const merged = runCli(['eval', 'merge', ...parts, '--real', reference, '--json']);
    const whole = runCli(['eval', 'fid', '--real', reference, '--fake', realDir, '--json']);
    expect(Math.abs(fidOf(merged) - fidOf(whole))).toBeLessThan(1e-9);

    // 3 images in 5 shards [floor(3i/5), floor(3(i+1)/5)): 1, 3 and 4 hold one each, 0 and 2 none
    const small = path.join(tmp, 'small');
    fs.mkdirSync(small);
    for (const f of fs.readdirSync(realDir).slice(0, 3)) fs.copyFileSync(path.join(realDir, f), path.join(small, f));
    const smallParts = [0, 1, 2, 3, 4].map((i) => path.join(tmp, 'small-parts', `part-${i}.npz`));
    const outs = await Promise.all(smallParts.map((file, i) => runCliAsync(['eval', 'fid', '--fake', small, '--shard', `${i}/5`, '--save-partial', file])));
    outs.forEach(expectOk);
    expect(outs.map((r) => /\((\d) of 3 images/.exec(r.stdout)![1])).toEqual(['0', '1', '0', '1', '1']);
    expect(outs[2].stdout).toMatch(/shard 2\/5 \(0 of 3 images: no images;/);
    expectOk(runCli(['eval', 'merge', ...smallParts, '--save-stats', path.join(tmp, 'small-merged.npz')]));
    expectOk(runCli(['eval', 'fid', '--real', small, '--save-stats', path.join(tmp, 'small-whole.npz')]));
    const a = readNpz(path.join(tmp, 'small-merged.npz'));
    const b = readNpz(path.join(tmp, 'small-whole.npz'));
    for (const key of ['mu', 'sigma']) {
      const x = a.get(key)!.data,
        y = b.get(key)!.data;
      expect(x.length).toBe(y.length);
      let worst = 0;
      for (let i = 0; i < x.length; i++) worst = Math.max(worst, Math.abs(x[i] - y[i]));
      expect(worst).toBeLessThan(1e-12);
    }
  });

  it('refuses bad shards, mixed runs and incomplete or mismatched parts, in one line with exit code 2', async () => {
    const out = path.join(tmp, 'bad');
    const cases: [string[], RegExp][] = [
      [[...args, '--shard', '0/2'], /^error: --shard needs --out-dir/],
      [[...args, '--out-dir', out, '--shard', '2/2'], /^error: --shard: shard 2 of 2 does not exist; shards are 0 to 1$/],
      [[...args, '--out-dir', out, '--shard', 'half'], /^error: --shard: expected i\/N .*got 'half'$/],
      [[...args, '--out-dir', out, '--shard', '0/0'], /^error: --shard: expected i\/N/],
      [[...args, '--out-dir', out, '--out', path.join(tmp, 'x.png')], /^error: --out names a grid; with --out-dir each image is its own file/],
      [[...args, '--out-dir', out, '--progress-frames', path.join(tmp, 'frames')], /^error: --progress-frames .* does not combine with --out-dir$/],
      [[...args, '--batch-size', '4'], /^error: --batch-size applies with --out-dir/],
      [[...args, '--out-dir', out, '--batch-size', '5000'], /^error: --batch-size: 5000 is over the limit of 1024$/],
      [[...args, '--out-dir', out, '--num', '2000000'], /^error: --num: 2000000 is over the limit of 1000000; a run writes at most 1000000 files/],
      [[...args, '--out-dir', out, '--num', '200000'], /^error: --num: 10 classes x 200000 images = 2000000 images, over the limit of 1000000/],
      [[...args, '--out-dir', path.join(realDir, '0000.png')], /^error: --out-dir: .*0000\.png is a file, not a folder/],
      // the sharded folder holds seed 0's images
      [
        [...args, '--out-dir', path.join(tmp, 'sharded'), '--seed', '1'],
        /^error: --out-dir: .*sharded holds the images of another run \(seed 0 there, 1 now\); use an empty folder/,
      ],
      [
        ['sample', '--model', model, '--num', '2000', '--out', path.join(tmp, 'g.png')],
        /^error: --num: 2000 is over the limit of 1024; a call draws at most 1024 images \(classes x --num\) into a grid; write one file per image with --out-dir/,
      ],
      [['eval', 'fid', '--fake', realDir, '--shard', '0/3'], /^error: --shard needs --save-partial part\.npz/],
      [
        ['eval', 'fid', '--real', realDir, '--fake', realDir, '--save-partial', path.join(tmp, 'p.npz')],
        /^error: --save-partial computes the statistics of --fake only/,
      ],
      [['eval', 'fid', '--fake', realDir, '--save-partial', path.join(tmp, 'p.txt')], /^error: --save-partial: .*p\.txt must end in \.npz/],
      [['eval', 'fid', '--fake', realStats, '--shard', '0/2', '--save-partial', path.join(tmp, 'p.npz')], /^error: --fake: .*real\.npz is not a folder/],
      [['eval', 'fid', '--fake', realDir], /^error: required option '--real <dir\|stats\.npz>' not specified$/],
    ];
    const ran = await Promise.all(cases.map(([argv]) => runCliAsync(argv)));
    ran.forEach((r, i) => oneLineError(r, cases[i][1]));
    expect(fs.existsSync(out)).toBe(false);
    expect(fs.existsSync(path.join(tmp, 'p.npz'))).toBe(false);

    // a shard whose images are not all drawn yet (the folder's record names them)
    const partial = path.join(tmp, 'incomplete');
    fs.cpSync(path.join(tmp, 'sharded'), partial, { recursive: true });
    fs.rmSync(path.join(partial, '000120.png'));
    oneLineError(
      runCli(['eval', 'fid', '--fake', partial, '--shard', '2/3', '--save-partial', path.join(tmp, 'p.npz')]),
      /^error: --fake: 1 of the 50 images of shard 2\/3 are missing \(000120\.png\); run sample --out-dir .* --shard 2\/3 to the end first$/,
    );
    // shard 1/3 is complete: it can be evaluated while 2/3 is still being drawn
    expectOk(runCli(['eval', 'fid', '--fake', partial, '--shard', '1/3', '--save-partial', path.join(tmp, 'p.npz')]));

    const parts = (dir: string, n: number) => Array.from({ length: n }, (_, i) => path.join(tmp, dir, `part-${i}.npz`));
    const [p0, p1, p2] = parts('parts', 3);
    const [q0, q1, q2, q3] = parts('sorted-parts', 4);
    const other = path.join(tmp, 'other-dim.npz');
    savePartialNpz(
      other,
      { dim: 3, count: 50, mean: new Float64Array(3), m2: new Float64Array(9) },
      { index: 2, count: 3, total: 150, features: 'mnist-classifier-fc1' },
    );
    const unsharded = path.join(tmp, 'unsharded.npz');
    savePartialNpz(unsharded, { dim: 3, count: 2, mean: new Float64Array(3), m2: new Float64Array(9) });
    const merges: [string[], RegExp][] = [
      [[p0, p2], /^error: shard 1 of 3 missing \(2 parts given\); run eval fid --shard i\/3 --save-partial for each$/],
      [[p0, p1, p1, p2], /^error: shard 1\/3 is given twice: .*part-1\.npz and .*part-1\.npz$/],
      [[p0, p1, q2], /^error: parts of different shardings: .*part-0\.npz is shard 0\/3, .*part-2\.npz is 2\/4$/],
      [
        [p0, p1, other],
        /^error: .*part-0\.npz holds 128-d mnist-classifier-fc1 features, .*other-dim\.npz 3-d mnist-classifier-fc1 features: every shard must use the same --features$/,
      ],
      [[unsharded], /^error: .*unsharded\.npz: no shard record/],
      [[realStats], /^error: .*real\.npz: not the partial statistics of a shard/],
      [[q0, q1, q2, q3], /^error: --real is required \(or give --save-stats/],
    ];
    const real = (m: RegExp) => (m.source.includes('--real is required') ? [] : ['--real', realStats]);
    const results = await Promise.all(merges.map(([files, message]) => runCliAsync(['eval', 'merge', ...files, ...real(message)])));
    results.forEach((r, i) => oneLineError(r, merges[i][1]));
  });
});
