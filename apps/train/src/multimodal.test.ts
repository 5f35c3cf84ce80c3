import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { initBackend } from '@causalfusion/backend';
import { spawnSync } from 'child_process';
import { initialWeights, officialStateDict, trainingEntries } from '@causalfusion/config';
import { readSafetensors, writeSafetensors } from '@causalfusion/safetensors';
import { makeTrainConfig, modelConfigOf } from './config';
import { parseMultimodalTrainArgs } from './multimodal-config';
import { trainMultimodal } from './multimodal-trainer';
import { parseTrainCommand } from './task';
import { tinyMultimodalArgs } from '../../../test-utils/tiny-training';

jest.setTimeout(120_000);
beforeAll(async () => {
  await initBackend({ backend: 'wasm', quiet: true });
});

let root: string;
beforeEach(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'cf-mm-'));
});
afterEach(() => fs.rmSync(root, { recursive: true, force: true }));

const quiet = { write: () => {}, tty: false };
const tinyArgs = (out: string, steps: number) => [...tinyMultimodalArgs(out, steps), '--checkpoint-every', '2', '--log-every', '1'];

function weights(dir: string): Map<string, Float32Array> {
  return new Map([...readSafetensors(path.join(dir, 'checkpoint', 'model.safetensors')).tensors].map(([k, t]) => [k, t.data]));
}

describe('--task multimodal', () => {
  it('is parsed by the training command line, and its flags are checked', () => {
    const cmd = parseTrainCommand(tinyArgs(path.join(root, 'a'), 4));
    expect(cmd.task).toBe('multimodal');
    expect(cmd.config).toMatchObject({ steps: 4, checkpointEvery: 2 });
    expect(() => parseMultimodalTrainArgs([...tinyArgs(path.join(root, 'a'), 4), '--caption-prob', '1.5'])).toThrow(/caption-prob must be in \[0, 1\]/);
    expect(() => parseMultimodalTrainArgs([...tinyArgs(path.join(root, 'a'), 4), '--workers', '2'])).toThrow(/one replica/);
    expect(parseMultimodalTrainArgs(tinyArgs(path.join(root, 'a'), 4)).config.foregroundWeight).toBe(0);
    expect(parseMultimodalTrainArgs([...tinyArgs(path.join(root, 'a'), 4), '--foreground-weight', '4']).config.foregroundWeight).toBe(4);
    expect(() => parseMultimodalTrainArgs([...tinyArgs(path.join(root, 'a'), 4), '--foreground-weight', '-1'])).toThrow(/--foreground-weight must be >= 0/);
    expect(() => parseMultimodalTrainArgs(['--task', 'multimodal', '--preset', 'huge', '--out', 'x'])).toThrow(/unknown multimodal preset "huge"/);
  });

  it('4 steps straight equal 2 steps + --resume + 2 steps, bit for bit, and the text and image losses are logged', async () => {
    const straight = path.join(root, 'straight');
    const resumed = path.join(root, 'resumed');
    const a = await trainMultimodal({ ...parseMultimodalTrainArgs(tinyArgs(straight, 4)), ...quiet });
    expect(a.step).toBe(4);
    expect(Number.isFinite(a.textLoss) && a.textLoss > 0 && Number.isFinite(a.imageLoss)).toBe(true);
    await trainMultimodal({ ...parseMultimodalTrainArgs(tinyArgs(resumed, 2)), ...quiet });
    const b = await trainMultimodal({ ...parseMultimodalTrainArgs([...tinyArgs(resumed, 4), '--resume']), ...quiet });
    expect(b.sessionSteps).toBe(2);
    const [wa, wb] = [weights(straight), weights(resumed)];
    expect([...wb.keys()]).toEqual([...wa.keys()]);
    for (const [k, v] of wa) expect(Buffer.from(wb.get(k)!.buffer).equals(Buffer.from(v.buffer))).toBe(true);
    await expect(trainMultimodal({ ...parseMultimodalTrainArgs([...tinyArgs(path.join(root, 'none'), 4), '--resume']), ...quiet })).rejects.toThrow(
      /--resume: no checkpoint/,
    );
  });

  it('--init-from takes the image path from a class model of the same width and patch size; the rest starts fresh', async () => {
    // a class model shaped as multimodal-tiny's image path (width 32, 1 block, MLP ratio 2, 4x4-pixel patches)
    const classConfig = modelConfigOf(makeTrainConfig('tiny', { imageSize: 16, patchSize: 4, mlpRatio: 2, out: root }), 10);
    const classEntries = trainingEntries(classConfig);
    const source = officialStateDict(classEntries, initialWeights(classEntries, 7));
    const file = path.join(root, 'class.safetensors');
    writeSafetensors(file, source);
    const lines: string[] = [];
    // a learning rate too small to move anything: the checkpoint shows where the weights started
    const args = (out: string) => [...tinyArgs(out, 2), '--lr', '1e-9'];
    await trainMultimodal({
      ...parseMultimodalTrainArgs([...args(path.join(root, 'warm')), '--init-from', file]),
      write: (l) => void lines.push(l),
      tty: false,
    });
    await trainMultimodal({ ...parseMultimodalTrainArgs(args(path.join(root, 'cold'))), ...quiet });
    expect(lines.join('')).toMatch(/initialised \d+ of \d+ tensors from .*class\.safetensors \(x_proj, t_embedder, blocks, final_layer\); the rest fresh\n/);
    const [warm, cold] = [weights(path.join(root, 'warm')), weights(path.join(root, 'cold'))];
    const maxDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => Array.from(a).reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0);
    for (const [k, v] of warm) {
      const from = source.get(k);
      // copied tensors are the source's; the text path, the image positions and the LM head are the seed's
      expect([k, maxDiff(v, from ? from.data : cold.get(k)!) < 1e-6]).toEqual([k, true]);
    }
    for (const k of ['x_proj.weight', 't_embedder.mlp.0.weight', 'blocks.0.attn.qkv.weight']) expect(maxDiff(warm.get(k)!, cold.get(k)!)).toBeGreaterThan(1e-3);
    expect([...warm.keys()].filter((k) => source.has(k))).toHaveLength(classEntries.length - 3); // all but cond_pos_embed, pos_embed, y_embedder
    // --resume continues the run (its weights are in the checkpoint); a missing or mismatched source is one clear error
    const resumed = await trainMultimodal({ ...parseMultimodalTrainArgs([...args(path.join(root, 'warm')), '--steps', '3', '--resume']), ...quiet });
    expect(resumed.sessionSteps).toBe(1);
    expect(() => parseMultimodalTrainArgs([...args(path.join(root, 'x')), '--init-from', path.join(root, 'nope')])).toThrow(
      /^--init-from .*nope: no .*nope\/model\.safetensors; give a model folder/,
    );
    const wide = trainingEntries(modelConfigOf(makeTrainConfig('tiny', { imageSize: 16, patchSize: 4, hiddenSize: 64, out: root }), 10));
    writeSafetensors(file, officialStateDict(wide, initialWeights(wide, 7)));
    await expect(trainMultimodal({ ...parseMultimodalTrainArgs([...args(path.join(root, 'wide')), '--init-from', file]), ...quiet })).rejects.toThrow(
      /^--init-from .*: its transformer blocks do not match this model's \(blocks\.0\.norm1\.weight: \[64\] there, \[32\] here\)/,
    );
  });

  it('the tfjs runtime gives the weights of the onnxruntime one up to float rounding (one checkpoint format)', async () => {
    const ort = path.join(root, 'ort');
    const tfjs = path.join(root, 'tfjs');
    await trainMultimodal({ ...parseMultimodalTrainArgs(tinyArgs(ort, 2)), ...quiet });
    const r = await trainMultimodal({ ...parseMultimodalTrainArgs([...tinyArgs(tfjs, 2), '--runtime', 'tfjs']), ...quiet });
    expect(r.backend).toMatch(/^tfjs: /);
    const [wa, wb] = [weights(ort), weights(tfjs)];
    // k_norm's bias shifts every score of a row alike: its gradient is rounding noise, which AdamW turns
    // into steps of up to lr (as the class task's runtime test allows)
    const lrSum = 1e-3 * (1 / 5 + 2 / 5); // the learning rates of the two steps (lr 1e-3, warmup 5)
    for (const [k, v] of wa) {
      const w = wb.get(k)!;
      let err = 0;
      for (let i = 0; i < v.length; i++) err = Math.max(err, Math.abs(v[i] - w[i]));
      expect([k, err <= (/k_norm\.bias$/.test(k) ? 2 * lrSum : 1e-4)]).toEqual([k, true]);
    }
  });

  it('the onnxruntime path never loads tfjs (a run, its checkpoint and export)', () => {
    // a fresh Node process: jest's module registry is not Node's
    const out = path.join(root, 'no-tfjs');
    const script = `
      const t = require(${JSON.stringify(path.join(__dirname, '..', 'dist', 'index.js'))});
      (async () => {
        const cmd = t.parseTrainCommand(${JSON.stringify([...tinyArgs(out, 2), '--export', path.join(out, 'model')])});
        await t.trainMultimodal({ ...cmd, write: () => {}, tty: false });
        console.log(JSON.stringify(Object.keys(require.cache).filter((k) => k.includes('@tensorflow'))));
      })();`;
    const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8' });
    expect(r.stderr).toBe('');
    expect(JSON.parse(r.stdout.trim().split('\n').pop()!)).toEqual([]);
    expect(fs.existsSync(path.join(out, 'model', 'tokenizer.json'))).toBe(true);
  });
});
