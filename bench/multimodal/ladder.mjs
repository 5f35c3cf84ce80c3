#!/usr/bin/env node
/**
 * The multimodal ladder: small checks, at a fixed budget, of whether text-to-image learns digit identity.
 *
 *   node bench/multimodal/ladder.mjs write --rung 1 --out DIR [--count 20000]    # a rung's training data (image-text folder)
 *   node bench/multimodal/ladder.mjs eval --rung 1 --model DIR [--n 200]          # a multimodal model on the rung's held-out items
 *   node bench/multimodal/ladder.mjs eval-class --model DIR [--n 200]             # a class model (the yardstick), same measures
 *   node bench/multimodal/ladder.mjs eval --rung 3 --real                         # the held-out images themselves: the reader's ceiling
 *
 * Rungs: 1 = one large digit in the left slot, captions "a 3" / "a three" (identity only); 2 = one digit, large or
 * small (top/bottom), left or right, the dataset's single-digit captions; 3 = the full grammar (the dataset itself).
 * `--both-slots` (rung 1): the same digit drawn in both slots, so the identity is in every token (as in the class
 * model's image); digits are read in the left slot.
 * Measures:
 *   - digits: text-to-image (CFG 2, 50 DDPM steps, S_eval 1; --cfg, --steps, --sampler ddim, --ar-steps change them) read by the
 *     shipped MNIST classifier in the named slot;
 *   - sensitivity: how much worse the eps-MSE of held-out items gets (t = 300, S = 1) when the caption names
 *     another digit (d + 5 mod 10), relative to the true caption. It says whether the model reads the digit at all,
 *     without sampling; the class model's version swaps the class label the same way.
 * Last line: `ladder rung=<k> digits=<share> faithful=<share> sensitivity=<relative MSE increase>`.
 */
import { parseArgs } from 'node:util';
import { createRequire } from 'node:module';
import { join } from 'node:path';

const root = new URL('../..', import.meta.url).pathname;
const require = createRequire(join(root, 'packages/multimodal/package.json'));
const mm = require(join(root, 'packages/multimodal/dist/index.js'));
const ev = require(join(root, 'packages/eval/dist/index.js'));
const { createDiffusion } = require('@causalfusion/diffusion');
const { createRng } = require('@causalfusion/rng');

const { positionals, values } = parseArgs({
  allowPositionals: true,
  options: {
    rung: { type: 'string', default: '1' },
    out: { type: 'string' },
    count: { type: 'string', default: '20000' },
    model: { type: 'string' },
    n: { type: 'string', default: '200' },
    // rung 1 with the digit drawn in both slots: the identity in all L tokens, as in the class model's image
    'both-slots': { type: 'boolean', default: false },
    steps: { type: 'string', default: '50' },
    cfg: { type: 'string', default: '2' },
    sampler: { type: 'string', default: 'ddpm' },
    'ar-steps': { type: 'string', default: '1' },
    // score the held-out images themselves instead of samples: what the reader gets right on real scenes
    real: { type: 'boolean', default: false },
  },
});
const rung = Number(values.rung);
const N = Number(values.n);
const SENSITIVITY_T = 300;

/** Item i of the rung on a split: { scene, image, captions }. Rungs 2 and 3 walk the dataset's own stream. */
function rungItems(split, count) {
  const bank = mm.digitBank(split);
  const out = [];
  if (rung === 1) {
    for (let i = 0; out.length < count; i++) {
      const rng = createRng(`ladder:${split}:${i}`);
      const digit = rng.uniformInt(10);
      const source = bank.byClass[digit][rng.uniformInt(bank.byClass[digit].length)];
      const sides = values['both-slots'] ? ['left', 'right'] : ['left'];
      const scene = { digits: sides.map((side) => ({ digit, size: 'large', side, vpos: null, source })) };
      const captions = [`a ${digit}`, `${/^[aeiou]/.test(mm.DIGIT_WORDS[digit]) ? 'an' : 'a'} ${mm.DIGIT_WORDS[digit]}`];
      out.push({ scene, image: mm.renderScene(scene, bank), captions });
    }
    return out;
  }
  const ds = new mm.CaptionedDataset({ split, count: split === 'train' ? 60000 : 1000 });
  for (let j = 0; out.length < count && j < ds.count; j++) {
    const it = ds.get(j);
    if (rung === 3 || it.scene.digits.length === 1) out.push(it);
  }
  if (out.length < count) throw new Error(`rung ${rung}: the ${split} split has only ${out.length} such items`);
  return out;
}

/** Relative eps-MSE increase with a wrong digit: (MSE(wrong) - MSE(true)) / MSE(true) at t = SENSITIVITY_T. */
function relativeIncrease(mse) {
  return (mse.wrong - mse.true) / mse.true;
}

async function evalMultimodal() {
  if (!values.model && !values.real) {
    console.error('ladder eval: give the model with --model DIR (or --real to score the held-out images themselves)');
    process.exit(2);
  }
  await mm.initBackend({ quiet: true });
  const { model, codec } = values.real ? {} : mm.loadMultimodalModel(values.model);
  const classifier = await ev.loadMnistClassifier();
  const items = rungItems('heldout', N);
  const canvas = new mm.CanvasCodec(mm.CANVAS_HEIGHT, mm.CANVAS_WIDTH, 4);
  const pixels = mm.CANVAS_HEIGHT * mm.CANVAS_WIDTH;
  const started = Date.now();
  let digits = 0,
    named = 0,
    faithful = 0;
  const bySize = { large: [0, 0], small: [0, 0] }; // [read right, named]
  for (let from = 0; from < N; from += 50) {
    const batch = items.slice(from, from + 50);
    if (values.real) {
      await scoreBatch(batch, concat(batch.map((it) => it.image)));
      continue;
    }
    const tokens = await mm.generateImages(
      model,
      codec,
      batch.map((it) => codec.encode(it.captions[0])),
      {
        arSteps: Number(values['ar-steps']),
        steps: Number(values.steps),
        cfgScale: Number(values.cfg),
        sampler: values.sampler,
        seed: from,
      },
    );
    await scoreBatch(batch, canvas.decode(tokens));
    process.stderr.write(`rung ${rung}: ${Math.min(from + 50, N)}/${N} images, ${((Date.now() - started) / 1000).toFixed(0)}s\n`);
  }

  /** Read each image back against its scene: digits (per size) and faithfulness. */
  async function scoreBatch(batch, images) {
    const scenes = batch.map((it) => ({ scene: it.scene, caption: it.captions[0] }));
    const scores = await mm.scoreScenes(
      batch.map((_, i) => images.subarray(i * pixels, (i + 1) * pixels)),
      scenes,
      classifier,
    );
    for (const score of scores) {
      for (const g of score.named) {
        named++;
        bySize[g.size][1]++;
        if (g.right) (digits++, bySize[g.size][0]++);
      }
      if (score.faithful) faithful++;
    }
  }
  const sizes = Object.entries(bySize)
    .filter(([, [, n]]) => n > 0)
    .map(([size, [k, n]]) => `${size} ${((100 * k) / n).toFixed(1)}% of ${n}`)
    .join(', ');
  if (values.real) {
    report(digits / named, faithful / N, NaN, `the held-out images themselves; digits by size: ${sizes}`);
    return;
  }

  // sensitivity: the same noised images under the true caption and under one naming another digit
  const M = Math.min(N, 64);
  const x = canvas.encode(concat(items.slice(0, M).map((it) => it.image)));
  const noise = new Float32Array(x.length);
  createRng(1).fillNormal(noise);
  const t = new Array(M).fill(SENSITIVITY_T);
  const xn = Float32Array.from(createDiffusion({ respacing: '' }).qSample(x, t, noise));
  const mse = {};
  for (const kind of ['true', 'wrong']) {
    const text = new Int32Array(M * model.config.textLength);
    items.slice(0, M).forEach((it, n) => {
      const caption = kind === 'true' ? it.captions[0] : swapDigits(it.captions[0]);
      text.set(codec.encode(caption), n * model.config.textLength);
    });
    const { eps } = model.forwardTextToImage(mm.prepareTextToImageTokens(model.config, { text, x, xn, t, splitSizes: [x.length / M / canvas.tokenDim] }));
    mse[kind] = meanSquaredError(eps.dataSync(), noise);
    eps.dispose();
  }
  report(
    digits / named,
    faithful / N,
    relativeIncrease(mse),
    `${named} named digits in ${N} images (${sizes}), ${((Date.now() - started) / 1000).toFixed(0)}s`,
  );
}

/** A caption with every digit (numeral or word) replaced by digit + 5 mod 10, in the same form. */
function swapDigits(caption) {
  const words = mm.DIGIT_WORDS;
  return caption
    .split(' ')
    .map((w) => (/^\d$/.test(w) ? String((Number(w) + 5) % 10) : words.includes(w) ? words[(words.indexOf(w) + 5) % 10] : w))
    .join(' ')
    .replace(/\ban (?=[^aeiou8])/g, 'a ')
    .replace(/\ba (?=[aeiou]|eight)/g, 'an ');
}

async function evalClass() {
  const tr = require(join(root, 'packages/transformer/dist/index.js'));
  const { loadMnist, resizeImages } = require(join(root, 'packages/data/dist/index.js'));
  await mm.initBackend({ quiet: true });
  const model = await tr.loadModel(values.model);
  const test = loadMnist('test');
  const M = Math.min(N, 64);
  const x = Float32Array.from(resizeImages(test.images.subarray(0, M * 784), 28, 16), (v) => v / 127.5 - 1);
  const noise = new Float32Array(x.length);
  createRng(1).fillNormal(noise);
  const t = new Array(M).fill(SENSITIVITY_T);
  const xn = Float32Array.from(createDiffusion({ respacing: '' }).qSample(x, t, noise));
  const L = model.config.inputSize ** 2 / model.config.patchSize ** 2;
  const mse = {};
  for (const kind of ['true', 'wrong']) {
    const y = Array.from({ length: M }, (_, n) => (kind === 'true' ? test.labels[n] : (test.labels[n] + 5) % 10));
    const randomness = { labelDropRand: new Array(M).fill(1), idsShuffle: Array.from({ length: M * L }, (_, i) => i % L) };
    const out = model.trainingForward({ x, xn, noise, t, y, splitSizes: [L] }, randomness);
    const loss = out.loss.dataSync();
    mse[kind] = loss.reduce((a, b) => a + b, 0) / loss.length;
    out.loss.dispose();
  }
  console.log(`class model ${values.model}: sensitivity ${relativeIncrease(mse).toFixed(3)} (digits: pnpm bench:quality --model ${values.model})`);
  console.log(`ladder rung=class digits=NaN faithful=NaN sensitivity=${relativeIncrease(mse).toFixed(3)}`);
}

function concat(arrays) {
  const out = new Uint8Array(arrays.reduce((n, a) => n + a.length, 0));
  let at = 0;
  for (const a of arrays) (out.set(a, at), (at += a.length));
  return out;
}

function meanSquaredError(a, b) {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += (a[i] - b[i]) ** 2;
  return s / a.length;
}

function report(digits, faithful, sensitivity, detail) {
  console.log(
    `rung ${rung} ${values.real ? 'held-out images' : values.model}: digits ${(100 * digits).toFixed(1)}%, faithful ${(100 * faithful).toFixed(1)}%, sensitivity ${sensitivity.toFixed(3)} (${detail})`,
  );
  console.log(`ladder rung=${rung} digits=${digits.toFixed(3)} faithful=${faithful.toFixed(3)} sensitivity=${sensitivity.toFixed(3)}`);
}

if (positionals[0] === 'write') {
  if (!values.out) {
    console.error('ladder write: give the output folder with --out DIR');
    process.exit(2);
  }
  const items = rungItems('train', Number(values.count));
  await mm.writeImageTextFolder(values.out, items, mm.CANVAS_HEIGHT, mm.CANVAS_WIDTH);
  console.log(`wrote ${items.length} rung-${rung} items to ${values.out} (e.g. ${JSON.stringify(items[0].captions)})`);
} else if (positionals[0] === 'eval') await evalMultimodal();
else if (positionals[0] === 'eval-class') await evalClass();
else {
  console.error('usage: ladder.mjs write|eval|eval-class --rung 1|2|3 ... (see the header)');
  process.exit(2);
}
