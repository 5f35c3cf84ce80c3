#!/usr/bin/env node
/**
 * pnpm bench:multimodal [--model DIR] [--baseline DIR] [--n 200] [--sampler ddpm|ddim] [--ar-steps S] [--steps N] [--cfg X]
 *
 * Scores multimodal models on the held-out split of the captioned MNIST compositions:
 *   - captioning: greedy captions of the held-out images, CIDEr-D (and BLEU-4) against their 5 references;
 *   - text-to-image from each item's first caption: caption faithfulness read back by the shipped MNIST
 *     classifier (the digit in each slot, the occupied slots, large/small, top/bottom when stated), and
 *     FID-MNIST between the digit crops of the generated and of the real held-out images.
 * --model defaults to the shipped model (packages/multimodal/assets/multimodal-model); --baseline is the
 * Transfusion-style run (same recipe, --image-ar-steps-max 1), sampled with 1 AR step. The sampler, S_eval, steps and CFG
 * default to the model's meta.json `sampling` (what `causalfusion generate` uses), else DEFAULT_GENERATE_SAMPLING; the baseline
 * gets the same steps and CFG. A last row reads the
 * held-out scenes' own images the same way (the ceiling of the faithfulness measures: the classifier misreads
 * some small digits) and gives the FID-MNIST of as many training-split scenes (the floor at this N). Prints a
 * table and, last, one headline line.
 */
import { parseArgs } from 'node:util';
import * as path from 'node:path';
import * as fs from 'node:fs';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const mm = require('../../packages/multimodal/dist/index.js');
const ev = require('../../packages/eval/dist/index.js');

const { values } = parseArgs({
  options: {
    model: { type: 'string' },
    baseline: { type: 'string' },
    n: { type: 'string', default: '200' },
    sampler: { type: 'string' },
    'ar-steps': { type: 'string' },
    steps: { type: 'string' },
    cfg: { type: 'string' },
    seed: { type: 'string', default: '0' },
  },
});
const N = Number(values.n);
const modelDir = values.model ?? mm.DEFAULT_MULTIMODAL_MODEL_DIR;
for (const dir of [modelDir, ...(values.baseline ? [values.baseline] : [])]) {
  if (!fs.existsSync(path.join(dir, 'model.safetensors'))) {
    console.error(`error: no multimodal model in ${dir}; train it with the commands in packages/multimodal/README.md`);
    process.exit(2);
  }
}
// the flags, else modelSampling: the model's meta.json sampling over DEFAULT_GENERATE_SAMPLING
const own = mm.modelSampling(mm.readMultimodalFolder(modelDir).meta);
const sampling = {
  sampler: values.sampler ?? own.sampler,
  arSteps: Number(values['ar-steps'] ?? own.arSteps),
  steps: Number(values.steps ?? own.steps),
  cfg: Number(values.cfg ?? own.cfg),
};
const models = [
  { name: 'CausalFusion', dir: modelDir, arSteps: sampling.arSteps },
  ...(values.baseline ? [{ name: 'Transfusion-style (S=1)', dir: values.baseline, arSteps: 1 }] : []),
];

await mm.initBackend({ quiet: true });
const classifier = await ev.loadMnistClassifier();
const heldout = new mm.CaptionedDataset({ split: 'heldout', count: Math.max(N, 1) });
const items = Array.from({ length: N }, (_, i) => heldout.get(i));

/** Digit crops (28x28) of the present slots of canvases, for FID-MNIST. */
function crops(images) {
  const out = [];
  for (const img of images) for (const r of mm.readSlots(img)) if (r.present) out.push(r.crop);
  const flat = new Uint8Array(out.length * 784);
  out.forEach((c, i) => flat.set(c, i * 784));
  return flat;
}
async function statsOf(flat) {
  const { features } = await classifier.features(flat);
  return ev.statisticsOf(features, ev.MNIST_FEATURE_DIM);
}
const realStats = await statsOf(crops(items.map((it) => it.image)));

const rows = [];
for (const m of models) {
  const { model, codec } = mm.loadMultimodalModel(m.dir);
  const canvas = new mm.CanvasCodec(model.config.imageHeight, model.config.imageWidth, model.config.patchSize);
  const t0 = Date.now();
  // captioning (greedy), in batches
  const gts = {};
  const res = {};
  for (let s = 0; s < N; s += 50) {
    const batch = items.slice(s, s + 50);
    const tokens = canvas.encode(concat(batch.map((it) => it.image)));
    const { texts } = mm.generateCaptions(model, codec, tokens, batch.length, { greedy: true });
    batch.forEach((it, i) => {
      gts[it.index] = it.captions;
      res[it.index] = [texts[i]];
    });
  }
  const cider = ev.ciderD(gts, res).score;
  const bleu4 = ev.bleu(gts, res).scores[3];
  const captionSeconds = (Date.now() - t0) / 1000;
  // text-to-image from the first caption
  const t1 = Date.now();
  const generated = [];
  for (let s = 0; s < N; s += 50) {
    const batch = items.slice(s, s + 50);
    const tokens = await mm.generateImages(
      model,
      codec,
      batch.map((it) => codec.encode(it.captions[0])),
      {
        arSteps: m.arSteps,
        cfgScale: sampling.cfg,
        steps: sampling.steps,
        sampler: sampling.sampler,
        seed: Number(values.seed) + s,
      },
    );
    const images = canvas.decode(tokens);
    for (let i = 0; i < batch.length; i++) generated.push(images.subarray(i * 512, (i + 1) * 512));
  }
  const t2iSeconds = (Date.now() - t1) / 1000;
  const tally = await tallyScenes(generated);
  const fid = (await ev.frechetDistance(await statsOf(crops(generated)), realStats)).distance;
  rows.push({
    name: m.name,
    arSteps: m.arSteps,
    cider,
    bleu4,
    ...Object.fromEntries(Object.entries(tally).map(([k, v]) => [k, v / N])),
    fid,
    captionSeconds,
    t2iSeconds,
  });
  model.dispose();
}

// The ceiling of the text-to-image measures: the held-out scenes' own images read the same way, and the
// FID-MNIST floor: crops of as many training-split scenes against the held-out crops.
{
  const tally = await tallyScenes(items.map((it) => it.image));
  const train = new mm.CaptionedDataset({ split: 'train', count: 60000 });
  const trainImages = Array.from({ length: N }, (_, i) => train.get(i).image);
  const fid = (await ev.frechetDistance(await statsOf(crops(trainImages)), realStats)).distance;
  rows.push({
    name: 'real held-out images (ceiling; FID: training-split images)',
    arSteps: null,
    cider: null,
    bleu4: null,
    ...Object.fromEntries(Object.entries(tally).map(([k, v]) => [k, v / N])),
    fid,
  });
}

/** How many of the images (image i against held-out scene i) pass each check of their caption. */
async function tallyScenes(images) {
  const scores = await mm.scoreScenes(
    images,
    items.map((it) => ({ scene: it.scene, caption: it.captions[0] })),
    classifier,
  );
  const tally = { faithful: 0, digits: 0, placement: 0, sizes: 0 };
  for (const score of scores) for (const k of Object.keys(tally)) tally[k] += score[k] ? 1 : 0;
  return tally;
}

function concat(arrays) {
  const out = new Uint8Array(arrays.reduce((a, b) => a + b.length, 0));
  let o = 0;
  for (const a of arrays) {
    out.set(a, o);
    o += a.length;
  }
  return out;
}

const pct = (x) => `${(100 * x).toFixed(1)}%`;
console.log(`held-out split: ${N} scenes (MNIST test digits); t2i: CFG ${sampling.cfg}, ${sampling.steps} ${sampling.sampler.toUpperCase()} steps per AR step`);
console.log('| model | S_eval | CIDEr-D | BLEU-4 | faithful | digits | placement | sizes | FID-MNIST (crops) |');
console.log('|---|---|---|---|---|---|---|---|---|');
const num = (x, digits) => (x === null ? '-' : x.toFixed(digits));
for (const r of rows) {
  console.log(
    `| ${r.name} | ${r.arSteps ?? '-'} | ${num(r.cider, 3)} | ${num(r.bleu4, 3)} | ${pct(r.faithful)} | ${pct(r.digits)} | ${pct(r.placement)} | ${pct(r.sizes)} | ${r.fid.toFixed(2)} |`,
  );
}
const modelRows = rows.filter((r) => r.arSteps !== null);
const head = modelRows[0];
console.log(
  `multimodal cider=${head.cider.toFixed(3)} faithful=${head.faithful.toFixed(3)} digits=${head.digits.toFixed(3)} fid-mnist=${head.fid.toFixed(2)}` +
    (modelRows[1]
      ? ` baseline-cider=${modelRows[1].cider.toFixed(3)} baseline-faithful=${modelRows[1].faithful.toFixed(3)}` +
        ` baseline-digits=${modelRows[1].digits.toFixed(3)} baseline-fid-mnist=${modelRows[1].fid.toFixed(2)}`
      : ''),
);
