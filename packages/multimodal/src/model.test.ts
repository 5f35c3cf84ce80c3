import { createDiffusion } from '@causalfusion/diffusion';
import { createRng } from '@causalfusion/rng';
import { AdamW } from '@causalfusion/transformer';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import {
  CaptionCodec,
  captionMask,
  generateCaptions,
  generateImages,
  initBackend,
  loadCaptionTokenizer,
  loadMultimodalModel,
  MultimodalConfig,
  MultimodalModel,
  multimodalLosses,
  multimodalTrainStep,
  pickToken,
  saveMultimodalModel,
  textLossMask,
  textToImageMask,
  tf,
  capArSteps,
  drawMultimodalRandomness,
  DEFAULT_RECIPE,
  prepareTextToImageTokens,
} from './index';
import { tinyCanvasConfig } from '../../../test-utils/multimodal';

jest.setTimeout(120_000);

const tokenizer = loadCaptionTokenizer();
const TINY: MultimodalConfig = tinyCanvasConfig(tokenizer.vocabSize, 2);
const codec = new CaptionCodec(tokenizer, TINY.textLength);
let model: MultimodalModel;

beforeAll(async () => {
  await initBackend({ backend: 'wasm', quiet: true });
  model = new MultimodalModel(TINY, { seed: 1 });
  // the official init zeroes the eps head; random weights there make the eps comparisons meaningful
  const rng = createRng(9);
  const w = model.body.finalLayer.linear.weight;
  w.assign(
    tf.tensor(
      Float32Array.from({ length: w.size }, () => rng.normal() * 0.2),
      w.shape,
    ),
  );
});
afterAll(() => model.dispose());

function randomTokens(n: number, seed: number): Float32Array {
  const rng = createRng(seed);
  return Float32Array.from({ length: n * model.numTokens * model.tokenDim }, () => rng.uniform(-1, 1));
}

const maxAbsDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
};

describe('attention masks (1 = masked)', () => {
  it('text-to-image: causal text, then the generalized causal mask over AR steps', () => {
    // 2 text tokens, 3 image tokens in steps [1, 2]: [t0 t1 | c0 | n0 n1 n2]
    const m = textToImageMask(2, 3, [1, 2]);
    const rows = Array.from({ length: 6 }, (_, r) => Array.from(m.slice(r * 6, r * 6 + 6)).join(''));
    expect(rows).toEqual([
      '011111', // t0 sees itself
      '001111', // t1 sees t0, t1
      '000111', // clean step 1 sees the text and itself
      '001011', // noised step 1 sees the text and itself (not the clean copy of its own step)
      '000100', // noised step 2 sees the text, clean step 1, and its own step
      '000100',
    ]);
  });
  it('captioning: the image sees itself only, text sees the image and earlier text', () => {
    const m = captionMask(2, 3);
    const rows = Array.from({ length: 5 }, (_, r) => Array.from(m.slice(r * 5, r * 5 + 5)).join(''));
    expect(rows).toEqual(['00111', '00111', '00011', '00001', '00000']);
  });
});

describe('loss masks', () => {
  it('only positions predicting a caption token or <|eos|> get a text loss; dropped captions none', () => {
    const row = codec.encode('a large 3');
    expect(Array.from(row.slice(0, 6))).toEqual([1, ...tokenizer.encodeOrdinary('a large 3'), 2, 0, 0].slice(0, 6));
    const mask = textLossMask([...row, ...row], TINY.textLength, [0, 1]);
    expect(Array.from(mask.slice(0, 6))).toEqual([1, 1, 1, 1, 0, 0]); // bos->a, a->large, large->3, 3->eos
    expect(mask.slice(TINY.textLength).every((v) => v === 0)).toBe(true);
  });

  it('pads and dropped captions do not change the loss; a captioning image gets no diffusion loss', () => {
    const diffusion = createDiffusion({ respacing: '' });
    const N = 4;
    const tokens = randomTokens(N, 3);
    const text = new Int32Array(N * TINY.textLength);
    ['a large 3', 'a small 8 on the left', 'two digits a big 1 and a tiny 2', 'a 4'].forEach((c, i) => text.set(codec.encode(c), i * TINY.textLength));
    const rnd = drawMultimodalRandomness(createRng(4), N, model.numTokens, model.tokenDim, 1000, { ...DEFAULT_RECIPE, captionProb: 0.5 }, 0);
    rnd.caption.set([0, 1, 0, 1]);
    rnd.dropped.set([0, 0, 1, 0]);
    const lossOf = (t: Int32Array, r = rnd) =>
      tf.tidy(() => {
        const l = multimodalLosses(model, diffusion, { tokens, text: t }, r, DEFAULT_RECIPE, codec.nullCaption());
        return [l.total.dataSync()[0], l.text.dataSync()[0], l.image.dataSync()[0]];
      });
    const base = lossOf(text);
    const changed = Int32Array.from(text);
    changed[1 * TINY.textLength + TINY.textLength - 1] = 5; // a pad after <|eos|> of sample 1 (causal: nothing reads it)
    changed.set(codec.encode('a big 9 on the right'), 2 * TINY.textLength); // the dropped caption of sample 2
    const after = lossOf(changed);
    expect(maxAbsDiff(after, base)).toBeLessThan(1e-6);
    // the image loss comes from samples 0 and 2 only: all-captioning batches have none
    const allCaption = { ...rnd, caption: new Uint8Array(N).fill(1) };
    expect(lossOf(text, allCaption)[2]).toBe(0);
    // changing a captioning sample's noise changes nothing; a text-to-image sample's does
    const noise2 = Float32Array.from(rnd.noise);
    noise2.fill(0.5, 1 * model.numTokens * model.tokenDim, 2 * model.numTokens * model.tokenDim);
    expect(maxAbsDiff(lossOf(text, { ...rnd, noise: noise2 }), base)).toBeLessThan(1e-6);
    noise2.fill(0.5, 0, model.numTokens * model.tokenDim);
    expect(Math.abs(lossOf(text, { ...rnd, noise: noise2 })[2] - base[2])).toBeGreaterThan(1e-4);
    expect(base[0]).toBeCloseTo(base[1] + DEFAULT_RECIPE.lossLambda * base[2], 4);
  });

  it('capArSteps merges the last steps (1 = plain diffusion)', () => {
    expect(capArSteps([3, 5, 8, 16], 1)).toEqual([32]);
    expect(capArSteps([3, 5, 8, 16], 2)).toEqual([3, 29]);
    expect(capArSteps([3, 5], 4)).toEqual([3, 5]);
  });
});

describe('KV cache equals the full-sequence forward', () => {
  it('captioning: logits of every text position, token by token', () => {
    const image = randomTokens(2, 5);
    const text = new Int32Array([...codec.encode('a large 3 to the left of a small 8'), ...codec.encode('a tiny 7 on the right')]);
    const T = TINY.textLength;
    const full = tf.tidy(() => model.forwardCaption({ image, text }).dataSync() as Float32Array);
    const cache = model.createCache(2);
    model.pushClean(
      cache,
      image,
      Int32Array.from({ length: 2 * model.numTokens }, (_, i) => i % model.numTokens),
      model.numTokens,
    );
    let err = 0;
    for (let j = 0; j < T; j++) {
      const logits = model.pushText(cache, [text[j], text[T + j]], j, 1, { logits: true })!;
      const V = TINY.vocabSize;
      for (let r = 0; r < 2; r++) err = Math.max(err, maxAbsDiff(logits.subarray(r * V, (r + 1) * V), full.subarray((r * T + j) * V, (r * T + j + 1) * V)));
    }
    cache.dispose();
    expect(err).toBeLessThan(1e-5);
  });

  it('text-to-image: text logits, and eps of AR step 2 after the clean tokens of step 1', () => {
    const L = model.numTokens;
    const d = model.tokenDim;
    const x = randomTokens(1, 6);
    const xn = randomTokens(1, 7);
    const text = codec.encode('a big 5 next to a small nine at the top');
    const ids = createRng(8).permutation(L);
    const t = 417;
    const full = tf.tidy(() => {
      const r = model.forwardTextToImage(prepareTextToImageTokens(model.config, { text, x, xn, t: [t], splitSizes: [12, 20], idsShuffle: ids }));
      return { logits: r.logits.dataSync() as Float32Array, eps: r.eps.dataSync() as Float32Array };
    });
    const cache = model.createCache(1);
    const logits = model.pushText(cache, text, 0, TINY.textLength, { logits: true })!;
    expect(maxAbsDiff(logits, full.logits)).toBeLessThan(1e-5);
    const gather = (src: Float32Array, from: number, to: number) => {
      const out = new Float32Array((to - from) * d);
      for (let j = from; j < to; j++) out.set(src.subarray(ids[j] * d, ids[j] * d + d), (j - from) * d);
      return out;
    };
    model.pushClean(cache, gather(x, 0, 12), ids.slice(0, 12), 12);
    const eps = model.predictEps(cache, gather(xn, 12, L), ids.slice(12), L - 12, t);
    cache.dispose();
    expect(maxAbsDiff(eps, full.eps.subarray(12 * d))).toBeLessThan(1e-5);
  });
});

describe('training', () => {
  it('a few steps on a tiny batch reduce the loss', () => {
    const m = new MultimodalModel(TINY, { seed: 2 });
    const opt = new AdamW(m.trainableVariables(), { lr: 3e-3 });
    const N = 8;
    const tokens = randomTokens(N, 11);
    const text = new Int32Array(N * TINY.textLength);
    for (let i = 0; i < N; i++) text.set(codec.encode(`a large ${i} on the left`), i * TINY.textLength);
    const rng = createRng(0);
    const losses: number[] = [];
    for (let s = 0; s < 25; s++) losses.push(multimodalTrainStep(m, opt, { tokens, text }, rng, codec.nullCaption()).textLoss);
    opt.dispose();
    m.dispose();
    const mean = (a: number[]) => a.reduce((x, y) => x + y, 0) / a.length;
    expect(mean(losses.slice(-5))).toBeLessThan(0.6 * mean(losses.slice(0, 5)));
  });
});

describe('decoding and generation', () => {
  const logits = Float32Array.from([9, 8, 0.5, 3, 2.9, -1]); // pad and bos are the largest
  it('greedy skips <|pad|> and <|bos|>; top-k 1 and a tiny top-p are greedy; sampling is seeded', () => {
    expect(pickToken(logits, { greedy: true }, null)).toBe(3);
    expect(pickToken(logits, {}, null)).toBe(3);
    expect(pickToken(logits, { topK: 1, temperature: 2 }, createRng(0))).toBe(3);
    expect(pickToken(logits, { topP: 0.01 }, createRng(0))).toBe(3);
    const draws = (seed: number) =>
      Array.from(
        { length: 200 },
        (
          (r) => () =>
            pickToken(logits, { temperature: 1.5 }, r)
        )(createRng(seed)),
      );
    const a = draws(1);
    expect(draws(1)).toEqual(a);
    expect(new Set(a)).toEqual(new Set([2, 3, 4, 5]));
    expect(
      new Set(
        Array.from(
          { length: 100 },
          (
            (r) => () =>
              pickToken(logits, { topK: 2 }, r)
          )(createRng(2)),
        ),
      ),
    ).toEqual(new Set([3, 4]));
    expect(() => pickToken(logits, { temperature: 0 }, createRng(0))).toThrow(/temperature/);
  });

  it('captions and images from a tiny random model: shapes, determinism, save/load round trip', async () => {
    const tokens = randomTokens(3, 12);
    const a = generateCaptions(model, codec, tokens, 3, { topK: 5, seed: 3 });
    expect(generateCaptions(model, codec, tokens, 3, { topK: 5, seed: 3 })).toEqual(a);
    expect(a.ids.every((row) => row.length >= 1 && row.length <= TINY.textLength - 1)).toBe(true);
    expect(() => generateCaptions(model, codec, tokens, 3, { topP: 1.5 })).toThrow(/top-p/);

    const prompts = [codec.encode('a large 3'), codec.encode('a small 8 on the right')];
    const img = await generateImages(model, codec, prompts, { arSteps: 4, cfgScale: 2, steps: 4, seed: 1 });
    expect(img.length).toBe(2 * model.numTokens * model.tokenDim);
    expect(img.every((v) => v >= -1.0001 && v <= 1.0001)).toBe(true);
    // one frame per AR step, the last one the result; the frames do not change the images
    const frames: Float32Array[] = [];
    const watched = await generateImages(model, codec, prompts, { arSteps: 4, cfgScale: 2, steps: 4, seed: 1, onArStep: (f) => frames.push(f.x0) });
    expect(frames).toHaveLength(4);
    expect(Array.from(frames[3])).toEqual(Array.from(img));
    expect(Array.from(watched)).toEqual(Array.from(img));

    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mm-model-'));
    try {
      saveMultimodalModel(model, dir, codec);
      const loaded = loadMultimodalModel(dir);
      const again = await generateImages(loaded.model, loaded.codec, prompts, { arSteps: 4, cfgScale: 2, steps: 4, seed: 1 });
      expect(maxAbsDiff(again, img)).toBeLessThan(1e-6);
      loaded.model.dispose();
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
