/**
 * Parser fuzzing (issue #19): mutated config.json files (readConfigFile / configFromJson) must be a clear
 * Error naming the file, or a config that is exactly what the file says: every field a finite number or
 * boolean of the right kind, taken from the file as is (no "4" read as 4, no unknown preset read as
 * none), and a model small enough to allocate (a depth of 1e9 must not loop over a billion blocks).
 * `pnpm fuzz` runs more cases (test-utils/fuzz.ts).
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { describeFailures, fuzz, fuzzTimeout, jsonText, mutateJson, mutateText } from '../../../test-utils/fuzz';
import {
  configFromJson,
  configToJson,
  DEFAULT_CONFIG,
  derived,
  makeConfig,
  MAX_PARAMETERS,
  officialShapes,
  PRESETS,
  readConfigFile,
  type ModelConfig,
} from './config';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'config-fuzz-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const SNAKE: Record<string, keyof ModelConfig> = {
  input_size: 'inputSize',
  patch_size: 'patchSize',
  latent_channels: 'latentChannels',
  hidden_size: 'hiddenSize',
  num_cond_tokens: 'numCondTokens',
  depth: 'depth',
  num_heads: 'numHeads',
  mlp_ratio: 'mlpRatio',
  num_classes: 'numClasses',
  class_dropout_prob: 'classDropoutProb',
  trainable_pos: 'trainablePos',
};

/** Seeds: full configs of each preset (as saveModel writes them), preset references, camelCase, partial. */
const SEEDS: unknown[] = [
  configToJson(makeConfig('CausalFusion-Tiny')),
  configToJson(makeConfig('CausalFusion-S', { classDropoutProb: 0 })),
  { model: 'CausalFusion-XL', num_classes: 1000 },
  { model: 'CausalFusion-Tiny', class_dropout_prob: 0.1, depth: 3 },
  { inputSize: 4, patchSize: 2, hiddenSize: 32, numHeads: 2, depth: 1, numClasses: 10, mlpRatio: 2.5, trainablePos: true },
  { input_size: 16, patch_size: 4, latent_channels: 1, hidden_size: 64, num_heads: 4, depth: 2, num_classes: 10 },
];

/** The parameter count, summed over the official state_dict (only called for configs already accepted). */
const parameters = (c: ModelConfig) => [...officialShapes(c).values()].reduce((n, s) => n + s.reduce((a, b) => a * b, 1), 0);

describe('config.json fuzzing', () => {
  it(
    'every mutated config.json is a clear error naming the file, or exactly the config it says',
    async () => {
      const file = path.join(dir, 'config.json');
      let doc: unknown;
      const report = await fuzz<unknown, ModelConfig>({
        name: 'config.json',
        seed: 'config-1',
        cases: 1000,
        generate(rng) {
          const seed = rng.pick(SEEDS);
          let what: string;
          if (rng.chance(0.15)) {
            const m = mutateText(rng, JSON.stringify(seed, null, 2));
            fs.writeFileSync(file, m.text);
            what = m.what;
            try {
              doc = JSON.parse(m.text);
            } catch {
              doc = undefined;
            }
          } else {
            const m = mutateJson(rng, seed);
            const m2 = rng.chance(0.3) ? mutateJson(rng, m.value) : undefined;
            const text = jsonText(m2 ? m2.value : m.value, 2);
            fs.writeFileSync(file, text);
            doc = JSON.parse(text); // what the file says (-0 is written as 0)
            what = m2 ? `${m.what}; ${m2.what}` : m.what;
          }
          return { input: doc, what };
        },
        parse: () => readConfigFile(file),
        checkError: (_d, message) => (message.includes(file) ? undefined : 'does not name the file'),
        check(d, c) {
          const json = d as Record<string, unknown>;
          // "model": null (or absent) is no preset
          const preset = json.model == null ? {} : (PRESETS as Record<string, Partial<ModelConfig>>)[json.model as string];
          if (json.model != null && !Object.hasOwn(PRESETS, json.model as string)) return `"model": ${JSON.stringify(json.model)} read as a preset`;
          for (const [k, field] of Object.entries(SNAKE)) {
            const given = k in json ? json[k] : field in json ? json[field] : field in preset ? preset[field] : DEFAULT_CONFIG[field];
            if (!Object.is(c[field], given)) return `${field} is ${JSON.stringify(c[field])}, the file says ${JSON.stringify(given)}`;
            if (field === 'trainablePos' ? typeof c[field] !== 'boolean' : typeof c[field] !== 'number' || !Number.isFinite(c[field]))
              return `${field} = ${String(c[field])}`;
          }
          const d2 = derived(c);
          if (!(d2.mlpHidden >= 1 && Number.isSafeInteger(d2.numTokens) && Number.isInteger(d2.headDim))) return `derived sizes ${JSON.stringify(d2)}`;
          const n = parameters(c);
          if (!(n <= MAX_PARAMETERS)) return `${n} parameters`;
          return undefined;
        },
      });
      expect(describeFailures(report)).toBe('');
    },
    fuzzTimeout(60_000),
  );

  // One regression case for each bug the fuzzer found (the inputs it failed on, reduced).
  describe('regressions', () => {
    const read = (json: unknown) => () => configFromJson(json, 'c.json');
    it('numbers written as strings or booleans (were accepted: "mlp_ratio": "4", "class_dropout_prob": "0.1", "mlp_ratio": true)', () => {
      expect(read({ mlp_ratio: '4' })).toThrow('c.json: model config: mlpRatio must be a positive finite number, got "4"');
      expect(read({ mlp_ratio: true })).toThrow('mlpRatio must be a positive finite number, got true');
      expect(read({ class_dropout_prob: '0.1' })).toThrow('c.json: model config: classDropoutProb must be a number in [0, 1), got "0.1"');
    });
    it('"model": "toString" / "constructor" / "__proto__" (were read as no preset)', () => {
      for (const name of ['toString', 'constructor', '__proto__', 'hasOwnProperty']) {
        expect(read(JSON.parse(`{"model": "${name}"}`))).toThrow(`c.json: Unknown model preset "${name}"`);
      }
    });
    it('sizes no computer holds (depth 1e9 looped over a billion blocks; input_size 1e300 gave Infinity tokens)', () => {
      expect(read({ model: 'CausalFusion-Tiny', depth: 1e9 })).toThrow(
        /c\.json: model config: the model would have 4\.\d+e\+13 parameters; at most 2147483647 \(8 GB of float32\) are supported/,
      );
      expect(read({ model: 'CausalFusion-Tiny', input_size: 1e300 })).toThrow(/the model would have Infinity parameters/);
      expect(read({ model: 'CausalFusion-Tiny', mlp_ratio: 1e300 })).toThrow(/the model would have \d\.\d+e\+\d+ parameters/);
    });
    it('an MLP of zero width (mlp_ratio 0.001 gave fc1 of shape [0, 64])', () => {
      expect(read({ model: 'CausalFusion-Tiny', mlp_ratio: 0.001 })).toThrow(
        'c.json: model config: hiddenSize 64 x mlpRatio 0.001 leaves the MLP no hidden units',
      );
    });
    it('a field given twice, snake_case and camelCase (one silently won)', () => {
      expect(read({ input_size: 4, inputSize: 8 })).toThrow('c.json: "input_size" and "inputSize" are the same field; give it once');
    });
    it("the paper's largest model is within the limit", () => {
      expect(parameters(makeConfig('CausalFusion-H'))).toBeLessThan(MAX_PARAMETERS);
    });
  });
});
