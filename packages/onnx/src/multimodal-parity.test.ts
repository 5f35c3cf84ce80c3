/**
 * The multimodal training step on onnxruntime (OrtMultimodalTrainingSession) against the tfjs one of
 * @causalfusion/multimodal (multimodalLosses under tf.variableGrads): a tiny model with random weights, a
 * batch with both orders, a CFG-dropped caption, and AR splits with and without a clean context. The loss
 * (and its text / image parts) and every parameter's gradient must agree. Both sides take the parameter
 * layout, the masks and the text-loss rules from `@causalfusion/config`.
 */
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { createDiffusion } from '@causalfusion/diffusion';
import {
  BOS_ID,
  type MultimodalLossRecipe,
  EOS_ID,
  initBackend,
  MultimodalModel,
  multimodalLosses,
  PAD_ID,
  tf,
  type MultimodalBatch,
  type MultimodalConfig,
  type MultimodalRandomness,
} from '@causalfusion/multimodal';
import { createRng } from '@causalfusion/rng';
import { OrtMultimodalTrainingSession, type MultimodalLossAndGrads } from './multimodal-trainer';
import { TINY_MULTIMODAL_CONFIG } from '../../../test-utils/multimodal';

jest.setTimeout(60_000);

// an 8x8 canvas: L = 16 tokens
const CONFIG: MultimodalConfig = { ...TINY_MULTIMODAL_CONFIG, imageWidth: 8 };
const RECIPE: MultimodalLossRecipe = { lossLambda: 5, maxArWeight: 2, minArWeight: 1 };
const diffusion = createDiffusion({ respacing: '' });
let model: MultimodalModel;
let session: OrtMultimodalTrainingSession;

beforeAll(async () => {
  await initBackend({ backend: 'wasm', quiet: true });
  model = new MultimodalModel(CONFIG, { seed: 3 });
  // random weights everywhere (the init has zero biases, unit LayerNorms and a zero eps head)
  const rng = createRng(11);
  for (const e of model.stateEntries()) {
    const v = e.variable;
    const noise = Float32Array.from({ length: v.size }, () => 0.15 * rng.normal());
    tf.tidy(() => v.assign(tf.add(v, tf.tensor(noise, v.shape))));
  }
  session = await OrtMultimodalTrainingSession.create(CONFIG, { threads: 1 });
});
afterAll(async () => {
  await session?.release();
  model?.dispose();
});

const N = 6;
const L = 16;
const d = 4;
const T = CONFIG.textLength;
const NULL_CAPTION = Int32Array.from({ length: T }, (_, j) => (j === 0 ? BOS_ID : j === 1 ? EOS_ID : PAD_ID));

/** Caption rows [bos, ids..., eos, pads] with `lengths` caption tokens (T - 2: no pad at all). */
function captionRows(lengths: number[], seed: number): Int32Array {
  const rng = createRng(seed);
  const text = new Int32Array(lengths.length * T);
  lengths.forEach((k, n) => {
    text[n * T] = BOS_ID;
    for (let j = 1; j <= k; j++) text[n * T + j] = 3 + rng.uniformInt(CONFIG.vocabSize - 3);
    text[n * T + k + 1] = EOS_ID;
  });
  return text;
}

function makeStep(caption: number[], dropped: number[], splitSizes: number[], seed: number): { batch: MultimodalBatch; rnd: MultimodalRandomness } {
  const rng = createRng(seed);
  const batch = { tokens: Float32Array.from({ length: N * L * d }, () => rng.uniform(-1, 1)), text: captionRows([3, 6, 1, 4, 2, 5], seed + 1) };
  const noise = new Float32Array(N * L * d);
  rng.fillNormal(noise);
  const idsShuffle = new Int32Array(N * L);
  for (let n = 0; n < N; n++) idsShuffle.set(rng.permutation(L), n * L);
  const rnd = {
    caption: Uint8Array.from(caption),
    dropped: Uint8Array.from(dropped),
    t: Int32Array.from({ length: N }, () => rng.uniformInt(1000)),
    splitSizes,
    noise,
    idsShuffle,
  };
  return { batch, rnd };
}

const maxAbs = (a: ArrayLike<number>) => {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]));
  return m;
};
const maxDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
};

/** The tfjs step: the three losses and every variable's gradient (zeros where the loss does not reach it). */
function tfjsStep(batch: MultimodalBatch, rnd: MultimodalRandomness, recipe: MultimodalLossRecipe) {
  const entries = model.stateEntries();
  let parts = { text: NaN, image: NaN };
  const { value, grads } = tf.variableGrads(
    () => {
      const l = multimodalLosses(model, diffusion, batch, rnd, recipe, NULL_CAPTION);
      parts = { text: l.text.dataSync()[0], image: l.image.dataSync()[0] };
      return l.total;
    },
    entries.map((e) => e.variable),
  );
  const out = {
    loss: value.dataSync()[0],
    textLoss: parts.text,
    imageLoss: parts.image,
    grads: entries.map((e) => (grads[e.variable.name] ? Float32Array.from(grads[e.variable.name].dataSync()) : new Float32Array(e.variable.size))),
  };
  tf.dispose([value, ...Object.values(grads)]);
  return out;
}

interface Comparison {
  lossErr: number;
  textErr: number;
  imageErr: number;
  /** Worst max |ort - tfjs| / max |tfjs| over the gradients (roundoff-only ones on the largest gradient's scale). */
  gradErr: number;
  worstKey: string;
  roundoff: string[];
}

async function compare(batch: MultimodalBatch, rnd: MultimodalRandomness, recipe = RECIPE): Promise<Comparison & { imageLoss: number }> {
  const ref = tfjsStep(batch, rnd, recipe);
  const params = model.stateEntries().map((e) => Float32Array.from(e.variable.dataSync()));
  const ort: MultimodalLossAndGrads = await session.lossAndGrads(params, { batch, rnd, recipe, nullCaption: NULL_CAPTION });
  const rel = (a: number, b: number) => Math.abs(a - b) / Math.max(Math.abs(b), 1e-30);
  const keys = model.stateEntries().map((e) => e.key);
  const largest = Math.max(...ref.grads.map(maxAbs));
  // zero in exact arithmetic (k_norm biases: softmax ignores a shift shared by all keys): compare on the largest scale
  const roundoff = keys.filter((_, i) => maxAbs(ref.grads[i]) < 1e-6 * largest);
  let gradErr = 0;
  let worstKey = '';
  keys.forEach((key, i) => {
    const scale = roundoff.includes(key) ? largest : maxAbs(ref.grads[i]);
    const err = maxDiff(ort.grads[i], ref.grads[i]) / scale;
    if (!(err <= gradErr)) [gradErr, worstKey] = [err, key];
  });
  return {
    lossErr: rel(ort.loss, ref.loss),
    textErr: rel(ort.textLoss, ref.textLoss),
    imageErr: ref.imageLoss ? rel(ort.imageLoss, ref.imageLoss) : Math.abs(ort.imageLoss),
    gradErr,
    worstKey,
    roundoff,
    imageLoss: ort.imageLoss,
  };
}

const measured: Record<string, string> = {};
afterAll(() => {
  if (Object.keys(measured).length)
    process.stdout.write(
      `ORT vs tfjs multimodal step:\n${Object.entries(measured)
        .map(([k, v]) => `  ${k}: ${v}`)
        .join('\n')}\n`,
    );
});

function expectParity(name: string, c: Comparison, expectRoundoff = true): void {
  measured[name] =
    `loss ${c.lossErr.toExponential(2)}, text ${c.textErr.toExponential(2)}, image ${c.imageErr.toExponential(2)}, worst grad ${c.gradErr.toExponential(2)} (${c.worstKey})`;
  expect(c.lossErr).toBeLessThan(1e-5);
  expect(c.textErr).toBeLessThan(1e-5);
  expect(c.imageErr).toBeLessThan(1e-5);
  expect(c.gradErr).toBeLessThan(1e-4);
  if (expectRoundoff) expect(c.roundoff).toEqual(['blocks.0.attn.k_norm.bias', 'blocks.1.attn.k_norm.bias']);
}

describe('the session and the tfjs model hold the same parameters', () => {
  it('keys, order, training-layout shapes, transposition and trainability', () => {
    expect(session.entries.map((e) => [e.key, e.shape, e.transposed, e.trainable])).toEqual(
      model.stateEntries().map((e) => [e.key, [...e.variable.shape], e.transposed, e.variable.trainable]),
    );
  });
});

describe('this package takes the multimodal rules from the tfjs-free @causalfusion/config', () => {
  it('its built entry (OrtMultimodalTrainingSession included) loads without tfjs', () => {
    const entry = path.resolve(__dirname, '..', 'dist', 'index.js');
    if (!fs.existsSync(entry)) throw new Error(`${entry} is missing: build the package first (pnpm turbo run build --filter @causalfusion/onnx)`);
    const script = `const m = require(${JSON.stringify(entry)});
const loaded = Object.keys(require.cache).filter((f) => /@tensorflow/.test(f));
process.stdout.write(JSON.stringify({ loaded, session: typeof m.OrtMultimodalTrainingSession }));`;
    expect(JSON.parse(execFileSync(process.execPath, ['-e', script], { encoding: 'utf8' }))).toEqual({ loaded: [], session: 'function' });
  });
});

describe('ORT multimodal training step vs tfjs', () => {
  const caption = [0, 1, 0, 1, 0, 0];
  const dropped = [0, 0, 1, 0, 0, 0];

  it('both orders, a dropped caption, a clean context (3 AR steps): loss, parts and every gradient', async () => {
    const { batch, rnd } = makeStep(caption, dropped, [4, 7, 5], 21);
    expectParity('both orders, splits [4, 7, 5]', await compare(batch, rnd));
  });

  it('both orders without a clean context (one AR step)', async () => {
    const { batch, rnd } = makeStep(caption, dropped, [16], 22);
    expectParity('both orders, splits [16]', await compare(batch, rnd));
  });

  it('one order only: text-to-image rows, then captioning rows (no image loss, zero image-head gradients)', async () => {
    const t2i = makeStep([0, 0, 0, 0, 0, 0], [0, 1, 0, 0, 0, 0], [2, 14], 23);
    expectParity('text-to-image only, splits [2, 14]', await compare(t2i.batch, t2i.rnd));
    const cap = makeStep([1, 1, 1, 1, 1, 1], [0, 0, 0, 0, 0, 0], [16], 24);
    // the eps head and the timestep embedder get no gradient here (zeros on both sides)
    expectParity('captioning only', await compare(cap.batch, cap.rnd), false);
  });
});

describe('the foreground weight (per-sample, per-token image loss weights)', () => {
  it('ORT and tfjs agree when half the tokens are blank, and the weight moves the image loss', async () => {
    const { batch, rnd } = makeStep([0, 1, 0, 0, 0, 0], [0, 0, 0, 0, 1, 0], [5, 11], 25);
    // the first half of every image's raster tokens blank (-1: a 0 pixel), the rest ink
    const tokens = Float32Array.from(batch.tokens);
    for (let n = 0; n < N; n++) tokens.fill(-1, n * L * d, n * L * d + (L / 2) * d);
    const half = { ...batch, tokens };
    const weighted = await compare(half, rnd, { ...RECIPE, foregroundWeight: 3 });
    expectParity('text-to-image with --foreground-weight 3, splits [5, 11]', weighted);
    const plain = await compare(half, rnd, RECIPE);
    expect(Math.abs(weighted.imageLoss - plain.imageLoss)).toBeGreaterThan(1e-3 * plain.imageLoss);
  });
});
