/**
 * The bad-input suite: wrong or missing values for every command a user runs. Each case: exit code 2, ONE
 * line on stderr that names the problem (and the fix), no stack trace, nothing on stdout, and nothing left
 * in the working folder. (limits-outputs.test.ts adds the size limits and output paths; train-cli.test.ts
 * the training edge cases.)
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import sharp from 'sharp';
import { runCli, writeTinyModel } from './tiny-model.test-util';

jest.setTimeout(300_000);

let tmp: string;
let model: string;

beforeAll(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cli-bad-'));
  model = path.join(tmp, 'model');
  await writeTinyModel(model);
  await sharp(Buffer.alloc(28 * 28, 100), { raw: { width: 28, height: 28, channels: 1 } })
    .png()
    .toFile(path.join(tmp, 'in.png'));
  fs.writeFileSync(path.join(tmp, 'text.png'), 'this is not an image');
  fs.writeFileSync(path.join(tmp, 'bad.json'), '{ not json');
  fs.writeFileSync(path.join(tmp, 'refs.json'), JSON.stringify({ annotations: [{ image_id: 1, caption: 'a 3' }] }));
  // a classifier folder as `finetune --task classify --export` writes it: the backbone's files, a head, meta.json with task "classify"
  const classifier = path.join(tmp, 'classifier');
  fs.mkdirSync(classifier);
  for (const f of ['model.safetensors', 'config.json']) fs.copyFileSync(path.join(model, f), path.join(classifier, f));
  fs.writeFileSync(path.join(classifier, 'head.safetensors'), '');
  const meta = JSON.parse(fs.readFileSync(path.join(model, 'meta.json'), 'utf8'));
  fs.writeFileSync(path.join(classifier, 'meta.json'), JSON.stringify({ ...meta, task: 'classify', classifier: { numLabels: meta.classNames.length } }));
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const listing = () => fs.readdirSync(tmp, { recursive: true }).map(String).sort();

/** [what, args (out paths inside tmp via {tmp}), what the one line must say]. */
const CASES: [string, string[], RegExp][] = [
  // sample
  ['sample: unknown class', ['sample', '--model', '{model}', '--class', '99', '--out', '{tmp}/o.png'], /class.*99/i],
  ['sample: --num 0', ['sample', '--model', '{model}', '--num', '0', '--out', '{tmp}/o.png'], /--num/],
  ['sample: --num not a number', ['sample', '--model', '{model}', '--num', 'many', '--out', '{tmp}/o.png'], /--num/],
  ['sample: --steps 0', ['sample', '--model', '{model}', '--steps', '0', '--out', '{tmp}/o.png'], /steps/],
  ['sample: --steps nonsense', ['sample', '--model', '{model}', '--steps', 'fast', '--out', '{tmp}/o.png'], /steps/],
  ['sample: --ar-steps 0', ['sample', '--model', '{model}', '--ar-steps', '0', '--out', '{tmp}/o.png'], /ar-steps/],
  ['sample: --cfg below 1', ['sample', '--model', '{model}', '--cfg', '0.5', '--out', '{tmp}/o.png'], /cfg/],
  ['sample: --cfg-interval malformed', ['sample', '--model', '{model}', '--cfg-interval', '5', '--out', '{tmp}/o.png'], /cfg-interval/],
  ['sample: unknown --order', ['sample', '--model', '{model}', '--order', 'spiral', '--out', '{tmp}/o.png'], /order/],
  ['sample: unknown --sampler', ['sample', '--model', '{model}', '--sampler', 'euler', '--out', '{tmp}/o.png'], /sampler/],
  ['sample: missing model folder', ['sample', '--model', '{tmp}/nope', '--out', '{tmp}/o.png'], /nope/],
  ['sample: --zoom 0', ['sample', '--model', '{model}', '--zoom', '0', '--out', '{tmp}/o.png'], /zoom/],
  ['sample: unknown --runtime', ['sample', '--model', '{model}', '--runtime', 'gpu', '--out', '{tmp}/o.png'], /runtime/],
  ['sample: --threads 0', ['sample', '--model', '{model}', '--threads', '0', '--out', '{tmp}/o.png'], /threads/],
  ['sample: unknown flag', ['sample', '--model', '{model}', '--colour', 'red', '--out', '{tmp}/o.png'], /colour/],
  ['sample: a classifier folder', ['sample', '--model', '{tmp}/classifier', '--out', '{tmp}/o.png'], /classifier.*causalfusion classify --model/],
  // edit
  ['edit: no --input', ['edit', '--model', '{model}', '--class', '1', '--out', '{tmp}/o.png'], /input/],
  ['edit: missing input file', ['edit', '--model', '{model}', '--input', '{tmp}/missing.png', '--class', '1', '--out', '{tmp}/o.png'], /missing\.png/],
  ['edit: input is not an image', ['edit', '--model', '{model}', '--input', '{tmp}/text.png', '--class', '1', '--out', '{tmp}/o.png'], /text\.png/],
  ['edit: unknown mask preset', ['edit', '--model', '{model}', '--input', '{tmp}/in.png', '--mask', 'middle', '--class', '1', '--out', '{tmp}/o.png'], /mask/],
  ['edit: unknown class', ['edit', '--model', '{model}', '--input', '{tmp}/in.png', '--class', '42', '--out', '{tmp}/o.png'], /42/],
  [
    'edit: a classifier folder',
    ['edit', '--model', '{tmp}/classifier', '--input', '{tmp}/in.png', '--class', '1', '--out', '{tmp}/o.png'],
    /classifier.*causalfusion classify --model/,
  ],
  // classify
  ['classify: a generative model folder', ['classify', '--model', '{model}', '--input', '{tmp}/in.png'], /generative model.*finetune --task classify/],
  // generate / caption (the shipped multimodal model)
  ['generate: empty prompt', ['generate', '--prompt', '', '--out', '{tmp}/o.png'], /prompt/],
  ['generate: --num 0', ['generate', '--prompt', 'a 3', '--num', '0', '--out', '{tmp}/o.png'], /--num/],
  ['generate: missing model', ['generate', '--model', '{tmp}/nope', '--prompt', 'a 3', '--out', '{tmp}/o.png'], /nope/],
  ['caption: missing input', ['caption', '--input', '{tmp}/missing.png'], /missing\.png/],
  ['caption: input is not an image', ['caption', '--input', '{tmp}/text.png'], /text\.png/],
  ['caption: --top-k 0', ['caption', '--input', '{tmp}/in.png', '--top-k', '0'], /top-k/],
  // train
  ['train: unknown preset', ['train', '--preset', 'huge', '--out', '{tmp}/run'], /preset/],
  ['train: negative steps', ['train', '--preset', 'tiny', '--steps', '-5', '--out', '{tmp}/run'], /steps/],
  ['train: negative lr', ['train', '--preset', 'tiny', '--lr', '-1', '--out', '{tmp}/run'], /lr/],
  ['train: unknown runtime', ['train', '--preset', 'tiny', '--runtime', 'gpu', '--out', '{tmp}/run'], /runtime/],
  ['train: --workers with ort', ['train', '--preset', 'tiny', '--workers', '2', '--out', '{tmp}/run'], /--workers 2 is for --runtime tfjs/],
  ['train: resume without a run', ['train', '--preset', 'tiny', '--resume', '--out', '{tmp}/run'], /checkpoint/],
  ['train: unknown task', ['train', '--task', 'video', '--out', '{tmp}/run'], /task/],
  // export
  ['export model: no run', ['export', 'model', '--run', '{tmp}/no-run', '--out', '{tmp}/m'], /no-run/],
  ['export onnx: no model', ['export', 'onnx', '--model', '{tmp}/nope', '--out', '{tmp}/m'], /nope/],
  // encode / decode / vae
  ['encode: missing data', ['encode', '--data', '{tmp}/no-images', '--vae', '{tmp}/no-vae', '--out', '{tmp}/l.bin'], /no-(images|vae)/],
  ['decode: missing latents', ['decode', '--latents', '{tmp}/none.bin', '--vae', '{tmp}/no-vae', '--out', '{tmp}/o.png'], /none\.bin|no-vae/],
  ['vae init: missing encoder', ['vae', 'init', '--encoder', '{tmp}/e.onnx', '--decoder', '{tmp}/d.onnx', '--preset', 'mar', '--out', '{tmp}/v'], /e\.onnx/],
  // info
  ['info: missing model', ['info', '--model', '{tmp}/nope'], /nope/],
  // eval
  ['eval fid: missing real', ['eval', 'fid', '--real', '{tmp}/no-real', '--fake', '{tmp}/no-fake'], /no-real/],
  ['eval fid: unknown features', ['eval', 'fid', '--real', '{tmp}', '--fake', '{tmp}', '--features', 'resnet'], /features/],
  ['eval cider: missing refs', ['eval', 'cider', '--refs', '{tmp}/none.json', '--cands', '{tmp}/none.json'], /none\.json/],
  ['eval cider: refs not JSON', ['eval', 'cider', '--refs', '{tmp}/bad.json', '--cands', '{tmp}/refs.json'], /bad\.json/],
  ['unknown command', ['paint', '--out', '{tmp}/o.png'], /paint/],
];

describe('bad input: one line, exit 2, nothing written', () => {
  it(`${CASES.length} cases across sample, edit, classify, generate, caption, train, export, encode/decode, vae, info, eval`, () => {
    expect(CASES.length).toBeGreaterThanOrEqual(40);
    const failures: string[] = [];
    for (const [what, raw, message] of CASES) {
      const args = raw.map((a) => a.replace('{tmp}', tmp).replace('{model}', model));
      const before = listing();
      const r = runCli(args);
      const err = r.stderr.trim();
      const problems = [
        r.status !== 2 && `exit ${r.status}`,
        err.split('\n').length !== 1 && `${err.split('\n').length} lines`,
        /\n\s+at /.test(r.stderr) && 'a stack trace',
        !message.test(err) && `message "${err}" does not match ${message}`,
        r.stdout.trim() !== '' && `stdout "${r.stdout.trim().slice(0, 80)}"`,
        JSON.stringify(listing()) !== JSON.stringify(before) && 'left files behind',
      ].filter(Boolean);
      if (problems.length) failures.push(`${what}: ${problems.join('; ')} [stderr: ${err.slice(0, 200)}]`);
    }
    expect(failures).toEqual([]);
  });
});
