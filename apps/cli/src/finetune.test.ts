/**
 * `causalfusion finetune --task classify` and `causalfusion classify` end to end on a tiny model (trained for
 * two steps by `causalfusion train --preset tiny`) and Fashion-MNIST: a linear probe and an end-to-end run
 * with their logs and exported classifier, --resume that continues exactly, classify on an image, a folder
 * and with --out, and bad input as one line with exit code 2 before anything is loaded or written.
 */
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import sharp from 'sharp';
import { loadFashionMnist } from '@causalfusion/data';
import { tinyClassArgs } from '../../../test-utils/tiny-training';

jest.setTimeout(120_000);

const CLI = path.resolve(__dirname, '../dist/cli.js');
const cf = (...args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8' });

let tmp: string;
let gen: string;
beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cf-finetune-'));
  gen = path.join(tmp, 'gen-model');
  const r = cf('train', ...tinyClassArgs(path.join(tmp, 'gen-run'), 2), '--export', gen);
  expect([r.status, r.stderr]).toEqual([0, '']);
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const ft = (out: string, ...extra: string[]) =>
  cf(
    'finetune',
    '--task',
    'classify',
    '--model',
    gen,
    '--data',
    'fashion-mnist',
    '--labels',
    '40',
    '--batch',
    '8',
    '--eval-every',
    '3',
    '--eval-count',
    '40',
    '--checkpoint-every',
    '3',
    '--log-every',
    '1',
    '--threads',
    '1',
    '--out',
    out,
    ...extra,
  );

/** A Fashion-MNIST test image as a 28x28 gray PNG. */
async function writeFashionPng(file: string, index: number): Promise<string> {
  const test = loadFashionMnist('test');
  await sharp(Buffer.from(test.images.subarray(index * 784, (index + 1) * 784)), { raw: { width: 28, height: 28, channels: 1 } })
    .png()
    .toFile(file);
  return test.classNames[test.labels[index]];
}

describe('causalfusion finetune --task classify', () => {
  it('trains a linear probe, logs it, exports a classifier that classify reads (an image, a folder, --out csv)', async () => {
    const out = path.join(tmp, 'probe');
    const cls = path.join(tmp, 'probe-model');
    const r = ft(out, '--probe', '--steps', '6', '--export', cls);
    expect([r.status, r.stderr]).toEqual([0, '']);
    expect(r.stdout).toMatch(/fine-tuning into .*: linear probe from .*, 394 trained parameters; 40 labeled fashion-mnist images of 10 classes at 28x28/);
    expect(r.stdout).toMatch(/^step 6\/6 {2}loss \d/m);
    expect(r.stdout).toMatch(/step 3: test accuracy \d+\.\d+% \(first 40 test images\)/);
    expect(r.stdout).toMatch(/test accuracy \d+\.\d+% on 10000 test images \(fashion-mnist test split\)/);
    expect(r.stdout).toMatch(/^done: step 6, last loss \d/m);
    const evalCsv = fs.readFileSync(path.join(out, 'eval.csv'), 'utf8').trim().split('\n');
    expect(evalCsv[0]).toBe('step,test_images,accuracy');
    expect(evalCsv.slice(1).map((l) => l.split(',').slice(0, 2).join(','))).toEqual(['3,40', '6,10000']);
    expect(fs.readFileSync(path.join(out, 'log.csv'), 'utf8').trim().split('\n')).toHaveLength(7);
    const meta = JSON.parse(fs.readFileSync(path.join(cls, 'meta.json'), 'utf8'));
    expect([meta.format, meta.task, meta.classNames.length, meta.dataset, meta.training.mode, meta.training.labels]).toEqual([
      'causalfusion-model',
      'classify',
      10,
      'fashion-mnist',
      'linear probe (head only)',
      40,
    ]);
    expect(meta.testAccuracy).toBeGreaterThanOrEqual(0);
    for (const f of ['model.safetensors', 'config.json', 'head.safetensors']) expect(fs.existsSync(path.join(cls, f))).toBe(true);
    // the probe leaves the backbone as it was
    expect(fs.readFileSync(path.join(cls, 'model.safetensors')).equals(fs.readFileSync(path.join(gen, 'model.safetensors')))).toBe(true);

    const images = path.join(tmp, 'images');
    fs.mkdirSync(path.join(images, 'sub'), { recursive: true });
    await writeFashionPng(path.join(images, 'b.png'), 0);
    await writeFashionPng(path.join(images, 'sub', 'a.png'), 1);
    fs.writeFileSync(path.join(images, 'notes.txt'), 'not an image');
    const one = cf('classify', '--model', cls, '--input', path.join(images, 'b.png'));
    expect([one.status, one.stderr]).toEqual([0, '']);
    const [file, label, prob] = one.stdout.trim().split('\t');
    expect(file).toBe(path.join(images, 'b.png'));
    expect(meta.classNames).toContain(label);
    expect(Number(prob)).toBeGreaterThan(0.1 - 1e-4);
    const csv = path.join(tmp, 'out', 'results.csv');
    const all = cf('classify', '--model', cls, '--input', images, '--out', csv);
    expect([all.status, all.stderr]).toEqual([0, '']);
    const lines = all.stdout.trim().split('\n');
    expect(lines.map((l) => l.split('\t')[0])).toEqual([path.join(images, 'b.png'), path.join(images, 'sub', 'a.png')]);
    expect(lines[0]).toBe(one.stdout.trim());
    expect(fs.readFileSync(csv, 'utf8').trim().split('\n')[0]).toBe('path,label,probability');
  });

  it('--resume continues exactly: 3 + 3 steps give the weights of 6 straight (end to end)', () => {
    const straight = path.join(tmp, 'e2e-straight');
    const split = path.join(tmp, 'e2e-split');
    expect(ft(straight, '--steps', '6').status).toBe(0);
    let r = ft(split, '--steps', '3');
    expect([r.status, r.stderr]).toEqual([0, '']);
    r = cf('finetune', '--out', split, '--resume', '--steps', '6', '--threads', '1');
    expect([r.status, r.stderr]).toEqual([0, '']);
    expect(r.stdout).toMatch(/resuming .* at step 3: end to end/);
    const weights = (dir: string) => fs.readFileSync(path.join(dir, 'checkpoint', 'params.safetensors'));
    expect(weights(split).equals(weights(straight))).toBe(true);
    // nothing left to do: says so, exit 0; with --export it writes the classifier of the checkpoint
    r = cf('finetune', '--out', split, '--resume', '--steps', '6');
    expect([r.status, r.stdout]).toEqual([
      0,
      `nothing left to do: the run in ${split} is already at step 6 (--steps 6); raise --steps above 6 to train longer\n`,
    ]);
    // export model (a train run's) refuses a finetune run with the command that writes its classifier, run next
    r = cf('export', 'model', '--run', split, '--out', path.join(tmp, 'e2e-export'));
    expect([r.status, r.stdout, r.stderr]).toEqual([
      2,
      '',
      `error: ${split} is a causalfusion finetune run (a classifier); write its classifier folder with causalfusion finetune --out ${split} --resume --steps 6 --export DIR\n`,
    ]);
    expect(fs.existsSync(path.join(tmp, 'e2e-export'))).toBe(false);
    r = cf('finetune', '--out', split, '--resume', '--steps', '6', '--export', path.join(tmp, 'e2e-model'));
    expect(r.status).toBe(0);
    expect(JSON.parse(fs.readFileSync(path.join(tmp, 'e2e-model', 'meta.json'), 'utf8')).training.mode).toBe('end to end');
  });

  it('refuses bad input with one line and exit code 2, before anything is written', () => {
    const out = path.join(tmp, 'bad');
    const cases: [string[], RegExp][] = [
      [['finetune', '--task', 'caption', '--model', gen, '--out', out], /^error: --task must be classify/],
      [['finetune', '--task', 'classify', '--model', path.join(tmp, 'missing'), '--out', out], /^error: .*missing/],
      [['finetune', '--task', 'classify', '--model', gen], /^error: give the run folder with --out/],
      [
        ['finetune', '--task', 'classify', '--model', gen, '--data', 'cifar', '--out', out],
        /^error: --data cifar: not mnist, fashion-mnist or an existing folder/,
      ],
      [['finetune', '--task', 'classify', '--model', gen, '--labels', '5', '--out', out], /^error: --labels 5: fewer labeled images than the 10 classes/],
      [['finetune', '--task', 'classify', '--model', gen, '--steps', '-1', '--out', out], /^error: --steps must be a positive integer, got -1/],
      [['finetune', '--task', 'classify', '--model', gen, '--out', path.join(gen, 'config.json')], /^error: --out: .* is a file, not a folder/],
      [['finetune', '--out', path.join(tmp, 'nothing-here'), '--resume'], /^error: --resume: no checkpoint in/],
      [['classify', '--model', path.join(tmp, 'probe-model'), '--input', path.join(gen, 'meta.json')], /^error: --input: cannot read .* as an image/],
      [['classify', '--model', gen, '--input', path.join(tmp, 'images', 'b.png')], /^error: --model: .* is a generative model/],
      [['classify', '--model', path.join(tmp, 'missing'), '--input', path.join(tmp, 'images', 'b.png')], /^error: --model: .* does not exist/],
      [['classify', '--model', gen, '--input', path.join(tmp, 'no-such.png')], /^error: --input: .* does not exist/],
      [
        ['classify', '--model', gen, '--input', path.join(tmp, 'images', 'b.png'), '--out', path.join(tmp, 'results.txt')],
        /^error: --out: .* is not a \.csv file name/,
      ],
      [
        ['classify', '--model', gen, '--input', path.join(tmp, 'images', 'b.png'), '--out', path.join(gen, 'config.json', 'r.csv')],
        /^error: --out: cannot write/,
      ],
    ];
    for (const [args, message] of cases) {
      const r = cf(...args);
      expect([args.join(' '), r.status, r.stdout]).toEqual([args.join(' '), 2, '']);
      expect(r.stderr).toMatch(message);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
    }
    expect(fs.existsSync(out)).toBe(false);
  });
});
