/**
 * Parser fuzzing (issue #19) of what the CLI reads itself: a model folder's meta.json and config.json
 * (readModelFolder, before any weights load) and input images (readRaw, as `edit --input`, `caption
 * --input` and masks read them). Each damaged file is a one-line UsageError naming the file, or a folder
 * / image that is exactly what the files say. `pnpm fuzz` runs more cases (test-utils/fuzz.ts).
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import sharp from 'sharp';
import { describeFailures, fuzz, fuzzTimeout, jsonText, mutateBytes, mutateImageHeader, mutateJson, mutateText } from '../../../test-utils/fuzz';
import { readRaw, type RawImage } from './images';
import { readModelFolder, type ModelFolder } from './model-folder';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'cli-fuzz-'));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

const META = {
  format: 'causalfusion-model',
  dataset: 'mnist',
  classNames: ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'],
  tokenizer: { kind: 'pixel', imageSize: 16, channels: 1, patchSize: 4, range: [-1, 1] },
  training: { steps: 10, backend: 'wasm' },
};
const CONFIG = {
  input_size: 16,
  patch_size: 4,
  latent_channels: 1,
  hidden_size: 32,
  num_cond_tokens: 4,
  depth: 1,
  num_heads: 4,
  mlp_ratio: 4,
  num_classes: 10,
  class_dropout_prob: 0.1,
  trainable_pos: true,
};

describe('CLI input fuzzing', () => {
  it(
    'every damaged meta.json / config.json is a one-line error naming the file, or a folder that is what they say',
    async () => {
      let n = 0;
      const report = await fuzz<string, ModelFolder>({
        name: 'model folder (cli meta.json + config.json)',
        seed: 'cli-model-1',
        cases: 400,
        errorNames: ['UsageError'],
        generate(rng) {
          const dir = path.join(root, `m${n++ % 4}`);
          fs.mkdirSync(dir, { recursive: true });
          fs.writeFileSync(path.join(dir, 'model.safetensors'), 'not read here');
          let meta = JSON.stringify(META, null, 2);
          let config = JSON.stringify(CONFIG, null, 2);
          let what: string;
          const which = rng.int(5);
          if (which <= 2) {
            const m = mutateJson(rng, META, [['tokenizer'], ['classNames']]);
            meta = jsonText(m.value, 2);
            what = `meta.json ${m.what}`;
          } else if (which === 3) {
            const m = mutateJson(rng, CONFIG);
            config = jsonText(m.value, 2);
            what = `config.json ${m.what}`;
          } else {
            const m = mutateText(rng, rng.chance(0.5) ? meta : config);
            if (m.text.includes('causalfusion-model')) meta = m.text;
            else config = m.text;
            what = `${m.text.includes('causalfusion-model') ? 'meta' : 'config'}.json ${m.what}`;
          }
          fs.writeFileSync(path.join(dir, 'meta.json'), meta);
          fs.writeFileSync(path.join(dir, 'config.json'), config);
          return { input: dir, what };
        },
        parse: (dir) => readModelFolder(dir),
        checkError(dir, message) {
          if (message.includes('\n')) return 'is more than one line';
          return message.includes(dir) ? undefined : 'does not name the folder or its files';
        },
        check(_dir, f) {
          const t = f.meta.tokenizer;
          if (t.kind !== 'pixel') return `tokenizer kind ${t.kind}`;
          for (const k of ['imageSize', 'channels', 'patchSize'] as const) if (!(Number.isInteger(t[k]) && t[k] >= 1)) return `tokenizer.${k} = ${t[k]}`;
          if (!(f.meta.classNames.length === f.config.numClasses && f.meta.classNames.every((c) => typeof c === 'string')))
            return `${f.meta.classNames.length} class names for ${f.config.numClasses} classes`;
          if (t.imageSize !== f.config.inputSize || t.patchSize !== f.config.patchSize || t.channels !== f.config.latentChannels)
            return 'geometry differs from config.json';
          if (f.tokenizer.numTokens !== (t.imageSize / t.patchSize) ** 2) return `${f.tokenizer.numTokens} tokens`;
          return undefined;
        },
      });
      expect(describeFailures(report)).toBe('');
    },
    fuzzTimeout(60_000),
  );

  it(
    'every damaged input image is a one-line error naming the file, or pixels of the size reported',
    async () => {
      const pixels = (w: number, h: number, c: number) => Buffer.from(Array.from({ length: w * h * c }, (_, i) => (i * 29 + (i >> 4)) & 0xff));
      const raw = (w: number, h: number, c: 1 | 3 | 4) => sharp(pixels(w, h, c), { raw: { width: w, height: h, channels: c } });
      const seeds = await Promise.all(
        [
          ['gray.png', raw(32, 32, 1).toColourspace('b-w').png()],
          ['rgba.png', raw(28, 20, 4).png()],
          ['palette.png', raw(16, 16, 3).png({ palette: true, colours: 4 })],
          ['rgb.jpg', raw(32, 16, 3).jpeg()],
          ['gray.jpg', raw(16, 16, 1).toColourspace('b-w').jpeg({ progressive: true })],
        ].map(async ([name, img]) => ({ name: name as string, bytes: new Uint8Array(await (img as sharp.Sharp).toBuffer()) })),
      );
      let n = 0;
      const report = await fuzz<{ file: string; channels: number }, RawImage>({
        name: 'image (cli readRaw)',
        seed: 'cli-image-1',
        cases: 600,
        perCaseMs: 5000,
        errorNames: ['UsageError'],
        generate(rng) {
          const seed = rng.pick(seeds);
          const m = rng.chance(0.3) ? mutateImageHeader(rng, seed.name, seed.bytes) : mutateBytes(rng, seed.bytes);
          const file = path.join(root, `case-${n++ % 4}-${seed.name}`);
          fs.writeFileSync(file, m.bytes);
          const channels = rng.pick([1, 3]);
          return { input: { file, channels }, what: `${seed.name}: ${m.what}, as ${channels} channel(s)` };
        },
        parse: ({ file, channels }) => readRaw(file, channels),
        checkError: ({ file }, message) => (message.includes('\n') ? 'is more than one line' : message.includes(file) ? undefined : 'does not name the file'),
        check: ({ channels }, img) =>
          Number.isInteger(img.width) &&
          img.width >= 1 &&
          Number.isInteger(img.height) &&
          img.height >= 1 &&
          img.channels === channels &&
          img.data.length === img.width * img.height * channels
            ? undefined
            : `${img.data.length} bytes for ${img.width}x${img.height}x${img.channels}`,
      });
      expect(describeFailures(report)).toBe('');
    },
    fuzzTimeout(60_000),
  );

  // One regression case for each bug the fuzzer found (the inputs it failed on, reduced).
  it("a meta.json that is not JSON is one line (V8's message quoted the damaged lines, newlines and all)", () => {
    const dir = path.join(root, 'not-json');
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, 'model.safetensors'), '');
    fs.writeFileSync(path.join(dir, 'meta.json'), '{\n  "format": "causalfusion-model",\n  k\n  "dataset": "mnist"\n}');
    fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(CONFIG));
    expect(() => readModelFolder(dir)).toThrow(`${dir}/meta.json is not valid JSON (`);
    try {
      readModelFolder(dir);
    } catch (e) {
      expect((e as Error).message).not.toContain('\n');
    }
  });
});
