/**
 * Parser fuzzing (issue #19): training checkpoint folders (state.json, model / ema / optimizer
 * safetensors) damaged in the ways a crash, a disk or a hand edit damage them. readCheckpointState and
 * readCheckpoint must give a clear Error naming the folder, or a checkpoint a run can resume from: a
 * state whose fields have their types and ranges, and weights / EMA / AdamW moments of the model's sizes,
 * all finite. `pnpm fuzz` runs more cases (test-utils/fuzz.ts).
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { parseSafetensors, serializeSafetensors } from '@causalfusion/safetensors';
import { trainingEntries } from '@causalfusion/config';
import { describeFailures, fuzz, fuzzTimeout, jsonText, mutateBytes, mutateJson, type FuzzRng } from '../../../test-utils/fuzz';
import { readCheckpoint, readCheckpointState, writeCheckpoint, type CheckpointContent } from './checkpoint';
import { makeTrainConfig, modelConfigOf } from './config';
import { classCheckpointModel } from './export';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'ckpt-fuzz-'));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

const CLASSES = ['0', '1', '2'];
const TRAIN = makeTrainConfig('tiny', {
  out: path.join(root, 'run'),
  imageSize: 8,
  patchSize: 4,
  hiddenSize: 8,
  numHeads: 2,
  numCondTokens: 1,
  depth: 1,
  threads: 1,
});
const CONFIG = modelConfigOf(TRAIN, CLASSES.length);
const ENTRIES = trainingEntries(CONFIG);
const TRAINABLE = ENTRIES.filter((e) => e.trainable);
const size = (shape: number[]) => shape.reduce((a, b) => a * b, 1);
const FILES = ['model.safetensors', 'ema.safetensors', 'optimizer.safetensors'];

/** Files of a valid checkpoint, by name. */
async function seedCheckpoint(): Promise<Record<string, Uint8Array>> {
  const arrays = (k: number) => ENTRIES.map((e, j) => Float32Array.from({ length: size(e.shape) }, (_, i) => Math.sin(i * k + j)));
  const dir = path.join(root, 'seed');
  await writeCheckpoint(dir, classCheckpointModel(CONFIG), {
    model: arrays(1),
    ema: arrays(2),
    optimizer: {
      stepCount: 7,
      m: TRAINABLE.map((e) => new Float32Array(size(e.shape)).fill(0.01)),
      v: TRAINABLE.map((e) => new Float32Array(size(e.shape)).fill(1e-4)),
    },
    state: {
      format: 'causalfusion-train-checkpoint',
      step: 7,
      adamStepCount: 7,
      rng: { s: [1, 2, 3, 4], spare: null },
      config: TRAIN,
      classNames: CLASSES,
      wallSeconds: 1.5,
    },
  });
  return Object.fromEntries(fs.readdirSync(dir).map((f) => [f, new Uint8Array(fs.readFileSync(path.join(dir, f)))]));
}

/** One tensor of a safetensors file set to NaN / Infinity, resized, or removed. */
function mutateTensors(rng: FuzzRng, bytes: Uint8Array): { bytes: Uint8Array; what: string } {
  const { tensors, metadata } = parseSafetensors(bytes);
  const key = rng.pick([...tensors.keys()]);
  const t = tensors.get(key)!;
  const op = rng.int(4);
  if (op === 0) {
    const i = rng.int(t.data.length);
    const v = rng.pick([NaN, Infinity, -Infinity]);
    t.data[i] = v;
    return { bytes: serializeSafetensors(tensors, metadata), what: `${key}[${i}] = ${v}` };
  }
  if (op === 1) {
    tensors.delete(key);
    return { bytes: serializeSafetensors(tensors, metadata), what: `${key} removed` };
  }
  const n = op === 2 ? t.data.length + 1 : Math.max(0, t.data.length - 1);
  tensors.set(key, { shape: [n], data: new Float32Array(n) });
  return { bytes: serializeSafetensors(tensors, metadata), what: `${key} given ${n} values` };
}

/** Problems with what readCheckpoint / readCheckpointState returned, or nothing. */
function problems(c: CheckpointContent): string | undefined {
  const s = c.state as unknown as Record<string, unknown>;
  const isCount = (v: unknown) => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
  if (!isCount(s.step)) return `state.step is ${JSON.stringify(s.step)}`;
  if (!isCount(s.adamStepCount)) return `state.adamStepCount is ${JSON.stringify(s.adamStepCount)}`;
  if (!(typeof s.wallSeconds === 'number' && Number.isFinite(s.wallSeconds) && s.wallSeconds >= 0))
    return `state.wallSeconds is ${JSON.stringify(s.wallSeconds)}`;
  if (!(Array.isArray(s.classNames) && s.classNames.every((x) => typeof x === 'string'))) return `state.classNames is ${JSON.stringify(s.classNames)}`;
  if (s.config === null || typeof s.config !== 'object' || Array.isArray(s.config)) return `state.config is ${JSON.stringify(s.config)}`;
  const r = s.rng as { s?: unknown; spare?: unknown } | null;
  if (!(
    r &&
    Array.isArray(r.s) &&
    r.s.length === 4 &&
    r.s.every((w) => Number.isInteger(w) && w >= 0 && w < 2 ** 32) &&
    (r.spare === null || (typeof r.spare === 'number' && Number.isFinite(r.spare)))
  )) {
    return `state.rng is ${JSON.stringify(r)}`;
  }
  for (const [name, arrays, entries] of [
    ['model', c.model, ENTRIES],
    ['ema', c.ema, ENTRIES],
    ['m', c.optimizer.m, TRAINABLE],
    ['v', c.optimizer.v, TRAINABLE],
  ] as const) {
    if (arrays.length !== entries.length) return `${arrays.length} ${name} arrays for ${entries.length} parameters`;
    for (let i = 0; i < arrays.length; i++) {
      if (arrays[i].length !== size(entries[i].shape)) return `${name} ${entries[i].key} has ${arrays[i].length} values, not ${size(entries[i].shape)}`;
      const a = arrays[i] as ArrayLike<number>;
      for (let j = 0; j < a.length; j++) if (!Number.isFinite(a[j])) return `${name} ${entries[i].key}[${j}] is ${a[j]}`;
    }
  }
  if (c.optimizer.stepCount !== s.adamStepCount) return 'the AdamW step count differs from state.json';
  return undefined;
}

describe('training checkpoint fuzzing', () => {
  it(
    'every damaged checkpoint is a clear error naming the folder, or one a run can resume from',
    async () => {
      const seed = await seedCheckpoint();
      const state = JSON.parse(new TextDecoder().decode(seed['state.json']));
      let n = 0;
      const report = await fuzz<string, CheckpointContent>({
        name: 'checkpoint folder (train readCheckpoint)',
        seed: 'checkpoint-1',
        cases: 600,
        generate(rng) {
          const dir = path.join(root, `c${n++ % 4}`);
          fs.rmSync(dir, { recursive: true, force: true });
          fs.mkdirSync(dir);
          const files = { ...seed };
          let what: string;
          const kind = rng.int(5);
          if (kind === 4) {
            // state.json cut short or damaged (a crash mid-write, a disk error)
            const m = mutateBytes(rng, seed['state.json']);
            files['state.json'] = m.bytes;
            what = `state.json ${m.what}`;
          } else if (kind <= 1) {
            const m = mutateJson(rng, state, [['step'], ['adamStepCount'], ['rng'], ['classNames'], ['wallSeconds'], ['format']]);
            files['state.json'] = new TextEncoder().encode(jsonText(m.value, 2));
            what = `state.json ${m.what}`;
          } else {
            const file = rng.pick(FILES);
            const m = kind === 2 ? mutateTensors(rng, seed[file]) : mutateBytes(rng, seed[file], [{ at: 0, width: 8 }]);
            files[file] = m.bytes;
            what = `${file} ${m.what}`;
          }
          if (rng.chance(0.05)) {
            const gone = rng.pick(Object.keys(files));
            delete files[gone];
            what += `; ${gone} missing`;
          }
          for (const [f, b] of Object.entries(files)) fs.writeFileSync(path.join(dir, f), b);
          return { input: dir, what };
        },
        parse(dir) {
          readCheckpointState(dir);
          return readCheckpoint(dir, classCheckpointModel(CONFIG));
        },
        checkError: (dir, message) => (message.includes(dir) ? undefined : 'does not name the checkpoint folder'),
        check: (_dir, c) => problems(c),
      });
      expect(describeFailures(report)).toBe('');
    },
    fuzzTimeout(60_000),
  );
});
