/**
 * Runtime isolation: the CLI loads a command's modules only when that command runs, so a command loads only
 * the runtime it uses. Each case runs the built CLI in a fresh Node process (jest's module registry is not
 * Node's) with a preload that records, at exit, which of tfjs-core and onnxruntime-node were loaded.
 */
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { CLI, writeTinyModel } from './tiny-model.test-util';

jest.setTimeout(60_000);

let tmp: string;
let model: string;
let probe: string;

beforeAll(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cli-isolation-'));
  model = path.join(tmp, 'model');
  await writeTinyModel(model);
  probe = path.join(tmp, 'probe.js');
  fs.writeFileSync(
    probe,
    `process.on('exit', () => {
      const loaded = Object.keys(require.cache);
      const has = (re) => loaded.some((f) => re.test(f));
      require('fs').writeFileSync(process.env.CF_PROBE_OUT, JSON.stringify({
        tfjsCore: has(/@tensorflow[\\\\/]tfjs-core[\\\\/]/), onnxruntime: has(/onnxruntime-node[\\\\/]/),
        train: has(/[\\\\/]apps[\\\\/]train[\\\\/]dist[\\\\/]/), multimodal: has(/[\\\\/]packages[\\\\/]multimodal[\\\\/]dist[\\\\/]/),
      }));
    });`,
  );
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** Run the CLI with the probe; returns its exit status and what it loaded. */
function loadedBy(args: string[]): { status: number | null; stderr: string; loaded: Record<string, boolean> } {
  const out = path.join(tmp, `probe-${args[0]}.json`);
  const r = spawnSync(process.execPath, ['-r', probe, CLI, ...args], { encoding: 'utf8', env: { ...process.env, CF_PROBE_OUT: out } });
  return { status: r.status, stderr: r.stderr, loaded: JSON.parse(fs.readFileSync(out, 'utf8')) };
}

/** A one-image sample with `runtime`, written to `out` in the temporary folder. */
const sampleArgs = (runtime: 'ort' | 'tfjs', out: string): string[] => [
  'sample',
  '--model',
  model,
  '--class',
  '3',
  '--num',
  '1',
  '--ar-steps',
  '2',
  '--steps',
  '2',
  '--runtime',
  runtime,
  '--out',
  path.join(tmp, out),
];

it('sample --runtime ort never loads @tensorflow/tfjs-core (nor the training app or the multimodal model)', () => {
  const r = loadedBy(sampleArgs('ort', 's.png'));
  expect(r.status).toBe(0);
  expect(r.loaded).toEqual({ tfjsCore: false, onnxruntime: true, train: false, multimodal: false });
});

it('sample --runtime tfjs loads tfjs and no onnxruntime', () => {
  const r = loadedBy(sampleArgs('tfjs', 't.png'));
  expect(r.status).toBe(0);
  expect(r.loaded).toMatchObject({ tfjsCore: true, onnxruntime: false });
});

it('info (without --model) loads neither runtime', () => {
  const r = loadedBy(['info']);
  expect(r.status).toBe(0);
  expect(r.loaded).toEqual({ tfjsCore: false, onnxruntime: false, train: false, multimodal: false });
});
