#!/usr/bin/env node
// Quality of a class-conditional MNIST model, read by the shipped MNIST classifier (@causalfusion/eval,
// 98.87% test accuracy; samples of another size are enlarged to 28x28 first: on MNIST test digits shrunk to
// 16x16 and enlarged back it reads 97.6%):
//   1. generation: `--num` samples (an equal share per class) for each S_eval in `--ar-steps`; the share
//      the classifier reads as the requested class;
//   2. fidelity: a classifier-feature FID (the same classifier's 128 penultimate features) of each row's samples
//      against `--num` MNIST test digits, both at the model's size (test digits shrunk to it) and enlarged to
//      28x28 the same way; beside it the real-vs-real floor at the same sample count: `--num` MNIST training
//      digits through the same round trip against the same test digits. Small-sample FID is biased upward, so
//      the floor, not 0, is what a perfect model would score here;
//   3. editing: `--edits` MNIST test digits with the center regenerated under a new class (the paper's
//      zero-shot editing); the share read as the new class, and a check that every pixel outside the
//      regenerated region is identical to the input.
// Same seed, sampler settings and classifier for every row, so rows compare. Defaults: the shipped model
// (apps/cli/assets/default-model), 1000 samples, S_eval 1,2,4,8, the model's sampler, steps and CFG (its meta.json
// "sampling"; else 50 DDPM steps, CFG 3), 200 edits at CFG 5 (the CLI's defaults for sample and edit).
// Run from the repository root: `pnpm bench:quality [--runtime ort|tfjs] [--num N] [--steps 50] ...`.
// Last line: `quality s1=<share> s4=<share> fid1=<FID> fid4=<FID> floor=<FID>`.
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

const root = new URL('../..', import.meta.url).pathname;
const require = createRequire(join(root, 'apps/cli/package.json'));
const { initBackend } = require('@causalfusion/backend');
const { loadMnist, PixelTokenizer, resizeImages } = require('@causalfusion/data');
const { createDiffusion } = require('@causalfusion/diffusion');
const { FeatureStatistics, frechetDistance, loadMnistClassifier } = require('@causalfusion/eval');
const { createRng } = require('@causalfusion/rng');
const { sample, edit, editRegion } = require('@causalfusion/sampler');

const { values: args } = parseArgs({
  options: {
    model: { type: 'string', default: join(root, 'apps/cli/assets/default-model') },
    runtime: { type: 'string', default: 'ort' },
    num: { type: 'string', default: '1000' },
    'ar-steps': { type: 'string', default: '1,2,4,8' },
    edits: { type: 'string', default: '200' },
    // sampler, steps and cfg default as the CLI's: the model's meta.json "sampling", else ddpm, 50, 3
    steps: { type: 'string' },
    cfg: { type: 'string' },
    'edit-cfg': { type: 'string', default: '5' },
    'cfg-interval': { type: 'string', default: '0,1000' },
    batch: { type: 'string', default: '250' },
    seed: { type: 'string', default: '0' },
    sampler: { type: 'string' },
    'no-clip': { type: 'boolean', default: false },
  },
});
const num = Number(args.num);
const arStepsList = args['ar-steps'].split(',').map(Number);
const numEdits = Number(args.edits);
const cfgInterval = args['cfg-interval'].split(',').map(Number);
const batchSize = Number(args.batch);
const seed = Number(args.seed);

/** The model folder as a Denoiser on the chosen runtime, and its pixel tokenizer. */
async function loadDenoiser(dir, runtime) {
  const meta = JSON.parse(require('node:fs').readFileSync(join(dir, 'meta.json'), 'utf8'));
  const t = meta.tokenizer;
  const tokenizer = new PixelTokenizer({ imageSize: t.imageSize, channels: t.channels, patchSize: t.patchSize });
  if (runtime === 'tfjs') {
    const { loadModel, TransformerDenoiser } = require('@causalfusion/transformer');
    await initBackend({ quiet: true });
    return { denoiser: new TransformerDenoiser(await loadModel(dir)), tokenizer, meta };
  }
  if (runtime === 'ort') {
    const { OrtDenoiser } = require('@causalfusion/onnx');
    return { denoiser: await OrtDenoiser.load(dir, { threads: 2 }), tokenizer, meta };
  }
  throw new Error(`--runtime: expected ort or tfjs, got ${runtime}`);
}

const { denoiser, tokenizer, meta } = await loadDenoiser(args.model, args.runtime);
const recommended = meta.sampling ?? {};
args.steps ??= recommended.steps ?? '50';
args.sampler ??= recommended.sampler ?? 'ddpm';
const cfgScale = Number(args.cfg ?? recommended.cfg ?? 3);
const diffusion = createDiffusion({ steps: 1000, schedule: 'linear', respacing: args.steps });
if (meta.dataset !== 'mnist') throw new Error(`bench:quality reads digits with the MNIST classifier; ${args.model} is a ${meta.dataset} model`);
const classifier = await loadMnistClassifier();
const grid = [tokenizer.grid, tokenizer.grid];
// x_0 estimates clamped to [-1, 1], as the CLI does for pixel models (--no-clip turns it off)
const common = { grid, diffusion, method: args.sampler, cfgScale, cfgInterval, seed, clipDenoised: !args['no-clip'] };
console.error(
  `model ${args.model} (${meta.training?.steps ?? '?'} training steps), runtime ${args.runtime}, ${args.steps} ${args.sampler} steps, CFG ${cfgScale} on [${cfgInterval}), clip ${!args['no-clip']}`,
);

/** Share of images (uint8, the model's size) the classifier reads as `wanted[i]` (enlarged to 28x28 first). */
async function shareCorrect(images, wanted) {
  const { labels } = await classifier.classify(resizeImages(images, tokenizer.imageSize, 28));
  let ok = 0;
  for (let i = 0; i < wanted.length; i++) if (labels[i] === wanted[i]) ok++;
  return ok / wanted.length;
}

/** Gaussian statistics of the classifier's penultimate features of images (uint8, `size` x `size`). */
async function featureStats(images, size) {
  const stats = new FeatureStatistics(128);
  const { features } = await classifier.features(resizeImages(images, size, 28));
  await stats.add(features);
  return stats.toStats();
}
/** N MNIST digits of a split, from `offset`, through the model-size round trip. */
function realDigits(split, n, offset = 0) {
  const data = loadMnist(split);
  if (offset + n > data.labels.length) throw new Error(`--num ${n}: MNIST ${split} has ${data.labels.length} digits`);
  return resizeImages(data.images.subarray(offset * 784, (offset + n) * 784), 28, tokenizer.imageSize);
}
const realStats = await featureStats(realDigits('test', num), tokenizer.imageSize);
const floor = (await frechetDistance(await featureStats(realDigits('train', num), tokenizer.imageSize), realStats)).distance;

const rows = [];
const conditions = Array.from({ length: num }, (_, i) => i % 10);
for (const arSteps of arStepsList) {
  const started = Date.now();
  const images = new Uint8Array(num * tokenizer.pixelsPerImage);
  for (let from = 0; from < num; from += batchSize) {
    const part = conditions.slice(from, from + batchSize);
    // a different seed per batch, the same across S_eval rows
    const { tokens } = await sample(denoiser, { ...common, conditions: part, arSteps, seed: seed + from });
    images.set(tokenizer.decode(tokens), from * tokenizer.pixelsPerImage);
    process.stderr.write(`S_eval=${arSteps}: ${Math.min(from + batchSize, num)}/${num} samples, ${((Date.now() - started) / 1000).toFixed(0)}s\n`);
  }
  const fid = (await frechetDistance(await featureStats(images, tokenizer.imageSize), realStats)).distance;
  rows.push({ task: `sample S_eval=${arSteps}`, n: num, share: await shareCorrect(images, conditions), fid, seconds: (Date.now() - started) / 1000 });
}

// Edits: test digits 0..numEdits-1 (at the model's size); the new class is another digit, drawn with a fixed seed.
const mnistTest = loadMnist('test');
const test = { labels: mnistTest.labels, images: resizeImages(mnistTest.images.subarray(0, numEdits * 784), 28, tokenizer.imageSize) };
const rng = createRng(seed + 1);
const region = editRegion('center', tokenizer.grid, tokenizer.grid);
const pixels = tokenizer.pixelsPerImage;
const editStarted = Date.now();
const newClasses = [];
const edited = new Uint8Array(numEdits * pixels);
for (let i = 0; i < numEdits; i++) newClasses.push((test.labels[i] + 1 + rng.uniformInt(9)) % 10);
for (let from = 0; from < numEdits; from += batchSize) {
  const to = Math.min(from + batchSize, numEdits);
  const source = test.images.subarray(from * pixels, to * pixels);
  const { tokens } = await edit(denoiser, {
    ...common,
    cfgScale: Number(args['edit-cfg']),
    conditions: newClasses.slice(from, to),
    arSteps: 1,
    tokens: tokenizer.encode(source),
    region,
    seed: seed + from,
  });
  edited.set(tokenizer.decode(tokens), from * pixels);
  process.stderr.write(`edits: ${to}/${numEdits}, ${((Date.now() - editStarted) / 1000).toFixed(0)}s\n`);
}
// Pixels outside the regenerated tokens must come back exactly as they went in.
const patch = tokenizer.patchSize;
let changedKept = 0;
for (let i = 0; i < numEdits; i++) {
  for (let y = 0; y < tokenizer.imageSize; y++) {
    for (let x = 0; x < tokenizer.imageSize; x++) {
      const token = Math.floor(y / patch) * tokenizer.grid + Math.floor(x / patch);
      const at = i * pixels + y * tokenizer.imageSize + x;
      if (!region[token] && edited[at] !== test.images[at]) changedKept++;
    }
  }
}
const editShare = await shareCorrect(edited, newClasses);
rows.push({ task: `edit center -> new class (CFG ${args['edit-cfg']})`, n: numEdits, share: editShare, seconds: (Date.now() - editStarted) / 1000 });

console.log(
  `\n| task | samples | read as the requested class | classifier-feature FID (floor ${floor.toFixed(2)}) | FID / floor | seconds (${args.runtime}) |`,
);
console.log('| --- | ---: | ---: | ---: | ---: | ---: |');
for (const r of rows) {
  const fid = r.fid === undefined ? ['', ''] : [r.fid.toFixed(2), (r.fid / floor).toFixed(2)];
  console.log(`| ${r.task} | ${r.n} | ${(100 * r.share).toFixed(1)}% | ${fid[0]} | ${fid[1]} | ${r.seconds.toFixed(0)} |`);
}
console.log(`| real vs real (MNIST train vs test digits, same round trip) | ${num} | | ${floor.toFixed(2)} | 1.00 | |`);
console.log(`\nkept pixels changed by editing: ${changedKept} (must be 0)`);
if (changedKept !== 0) process.exitCode = 1;
const row = (s) => rows.find((r) => r.task === `sample S_eval=${s}`) ?? {};
const fmt = (v, digits = 3) => (v === undefined ? 'NaN' : v.toFixed(digits));
console.log(`edit share ${fmt(editShare)}`);
console.log(`quality s1=${fmt(row(1).share)} s4=${fmt(row(4).share)} fid1=${fmt(row(1).fid, 2)} fid4=${fmt(row(4).fid, 2)} floor=${fmt(floor, 2)}`);
