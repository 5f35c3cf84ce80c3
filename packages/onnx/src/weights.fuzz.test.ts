/**
 * Parser fuzzing (issue #19): model folders (model.safetensors + config.json, or a weights file with its
 * config in the metadata) damaged in every way readModelFolder must notice: config.json fields, the
 * safetensors bytes and header, NaN / Infinity weights, the metadata config. Each is a clear Error naming
 * the file, or a model whose weights are exactly the official keys and shapes of its config, all finite.
 * `pnpm fuzz` runs more cases (test-utils/fuzz.ts).
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { parseSafetensors, serializeSafetensors, type NamedTensor } from '@causalfusion/safetensors';
import { configToJson, makeConfig, officialShapes } from '@causalfusion/config';
import { describeFailures, fuzz, fuzzTimeout, jsonText, mutateBytes, mutateJson, type FuzzRng } from '../../../test-utils/fuzz';
import { readModelFolder, type ModelFolder } from './weights';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'model-fuzz-'));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

const CONFIG = makeConfig(null, {
  inputSize: 2,
  patchSize: 1,
  latentChannels: 2,
  hiddenSize: 8,
  numHeads: 2,
  numCondTokens: 1,
  depth: 1,
  numClasses: 3,
  mlpRatio: 2,
});
const WEIGHTS = new Map<string, NamedTensor>(
  [...officialShapes(CONFIG)].map(([k, shape], j) => {
    const n = shape.reduce((a, b) => a * b, 1);
    return [k, { shape, data: Float32Array.from({ length: n }, (_, i) => Math.sin(i + j)) }];
  }),
);
const CONFIG_JSON = configToJson(CONFIG);
const WITH_METADATA = serializeSafetensors(WEIGHTS, { format: 'pt', config: JSON.stringify(CONFIG_JSON) });

/** A safetensors file with one tensor changed (NaN / Inf / shape / dtype) or its metadata config damaged. */
function mutateWeights(rng: FuzzRng, metadataConfig: boolean): { bytes: Uint8Array; what: string } {
  const kind = rng.int(4);
  if (kind === 0) {
    const m = mutateBytes(rng, WITH_METADATA, [{ at: 0, width: 8 }]);
    return { bytes: m.bytes, what: `model.safetensors ${m.what}` };
  }
  const tensors = new Map([...WEIGHTS].map(([k, t]) => [k, { shape: [...t.shape], data: Float32Array.from(t.data) }]));
  const keys = [...tensors.keys()];
  const key = rng.pick(keys);
  const t = tensors.get(key)!;
  let metadata: Record<string, string> = { format: 'pt', config: JSON.stringify(CONFIG_JSON) };
  let what: string;
  if (kind === 1) {
    const v = rng.pick([NaN, Infinity, -Infinity, 3.4e38, -0]);
    const i = rng.int(t.data.length);
    t.data[i] = v;
    what = `${key}[${i}] = ${v}`;
  } else if (kind === 2) {
    const op = rng.int(4);
    if (op === 0) (tensors.delete(key), (what = `${key} removed`));
    else if (op === 1) (tensors.set(`${key}_extra`, t), (what = `${key}_extra added`));
    else if (op === 2) ((t.shape = [...t.shape].reverse()), (what = `${key} reshaped to [${t.shape}]`));
    else {
      const shape = [t.data.length + 1];
      tensors.set(key, { shape, data: new Float32Array(shape[0]) });
      what = `${key} given ${shape[0]} values`;
    }
  } else {
    const m = mutateJson(rng, CONFIG_JSON);
    metadata = rng.chance(0.2) ? { format: 'pt', config: jsonText(m.value).slice(0, -1 - rng.int(3)) } : { format: 'pt', config: jsonText(m.value) };
    what = `metadata config ${m.what}`;
  }
  return { bytes: serializeSafetensors(tensors, metadataConfig ? metadata : { format: 'pt' }), what };
}

describe('model folder fuzzing (readModelFolder)', () => {
  it(
    'every damaged model folder is a clear error naming a file, or weights that are exactly those of its config',
    async () => {
      let n = 0;
      const report = await fuzz<{ location: string; dir: string }, ModelFolder>({
        name: 'model folder (onnx readModelFolder)',
        seed: 'model-folder-1',
        cases: 800,
        generate(rng) {
          const dir = path.join(root, `m${n++ % 4}`);
          fs.rmSync(dir, { recursive: true, force: true });
          fs.mkdirSync(dir);
          const weightsFile = path.join(dir, 'model.safetensors');
          const layout = rng.int(3); // 0: folder with config.json, 1: folder without (metadata config), 2: the .safetensors file itself
          let what: string;
          let configText = JSON.stringify(CONFIG_JSON, null, 2);
          let weights: Uint8Array = WITH_METADATA;
          if (rng.chance(0.5) || layout !== 0) {
            const m = mutateWeights(rng, layout !== 0);
            weights = m.bytes;
            what = m.what;
          } else {
            const m = mutateJson(rng, CONFIG_JSON);
            configText = jsonText(m.value, 2);
            what = `config.json ${m.what}`;
          }
          fs.writeFileSync(weightsFile, weights);
          if (layout === 0) fs.writeFileSync(path.join(dir, 'config.json'), configText);
          const location = layout === 2 ? weightsFile : dir;
          return { input: { location, dir }, what: `${['folder', 'folder, metadata config', 'weights file, metadata config'][layout]}: ${what}` };
        },
        parse: ({ location }) => readModelFolder(location),
        checkError: ({ dir }, message) => (message.includes(dir) ? undefined : 'names no file of the folder'),
        check(_input, folder) {
          const shapes = officialShapes(folder.config);
          if (folder.weights.size !== shapes.size) return `${folder.weights.size} tensors for ${shapes.size} keys`;
          for (const [k, shape] of shapes) {
            const t = folder.weights.get(k);
            if (!t || JSON.stringify(t.shape) !== JSON.stringify(shape)) return `${k} has shape ${JSON.stringify(t?.shape)}, not ${JSON.stringify(shape)}`;
            if (t.data.length !== shape.reduce((a, b) => a * b, 1)) return `${k} has ${t.data.length} values`;
            const bad = t.data.findIndex((v) => !Number.isFinite(v));
            if (bad >= 0) return `${k}[${bad}] is ${t.data[bad]}`;
          }
          return undefined;
        },
      });
      expect(describeFailures(report)).toBe('');
    },
    fuzzTimeout(60_000),
  );

  // One regression case for each bug the fuzzer found (the inputs it failed on, reduced).
  describe('regressions', () => {
    const write = (name: string, bytes: Uint8Array, config?: string) => {
      const dir = path.join(root, name);
      fs.mkdirSync(dir, { recursive: true });
      fs.writeFileSync(path.join(dir, 'model.safetensors'), bytes);
      if (config !== undefined) fs.writeFileSync(path.join(dir, 'config.json'), config);
      return dir;
    };
    it('NaN or Infinity weights (were loaded, to sample NaN images)', () => {
      const tensors = parseSafetensors(WITH_METADATA).tensors;
      tensors.get('x_proj.weight')!.data[5] = NaN;
      const dir = write('nan', serializeSafetensors(tensors), JSON.stringify(CONFIG_JSON));
      expect(() => readModelFolder(dir)).toThrow(
        `${dir}/model.safetensors: tensor "x_proj.weight" holds NaN at index 5; the weights are damaged (or from a diverged run): use another checkpoint`,
      );
    });
    it('a config.json of depth 65536 beside a 1-block file (took 2.5 s to list a million missing keys, in a message of megabytes)', () => {
      const dir = write('deep', WITH_METADATA, JSON.stringify({ ...CONFIG_JSON, depth: 65536 }));
      const t0 = Date.now();
      let message = '';
      try {
        readModelFolder(dir);
      } catch (e) {
        message = (e as Error).message;
      }
      expect(Date.now() - t0).toBeLessThan(1000);
      expect(message).toMatch(
        new RegExp(`^${dir}/model.safetensors does not match the model config \\(.*\\): the config has 983053 tensors, the file 28\\n  Fix: `),
      );
      // a file of another model lists at most 40 keys of each kind
      const other = write('other', WITH_METADATA, JSON.stringify({ ...CONFIG_JSON, depth: 100 }));
      expect(() => readModelFolder(other)).toThrow(/missing keys \(1485\): (blocks\.\d+\.[\w.]+, ){40}\.\.\. \(1445 more\)/);
    });
    it('a metadata config that is not JSON (was a bare SyntaxError naming no file)', () => {
      const dir = write('meta', serializeSafetensors(WEIGHTS, { config: '{"depth": 1' }));
      expect(() => readModelFolder(dir)).toThrow(`${dir}/model.safetensors metadata: "config" is not JSON`);
    });
  });
});
