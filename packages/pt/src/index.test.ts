/**
 * The official_tiny checkpoints as the official code writes them (torch 1.13): train.py's layout, a bare
 * state_dict and a float16 copy, read against weights.safetensors; and bad files, each a clear Error.
 */
import * as fs from 'fs';
import * as path from 'path';
import { crc32, readSafetensors } from '@causalfusion/safetensors';
import { resealZip } from '../../../test-utils/zip';
import { checkpointArgs, checkpointStateDict, parseTorchCheckpoint, readTorchCheckpoint, type TorchTensor } from './index';

const REF = process.env.CAUSALFUSION_REFERENCE ?? path.resolve(__dirname, '../../../../shared/reference/official_tiny');
const weights = readSafetensors(path.join(REF, 'weights.safetensors')).tensors;

function expectEqualWeights(got: Map<string, { shape: number[]; data: Float32Array }>, tol = 0): void {
  expect([...got.keys()]).toEqual([...weights.keys()]);
  for (const [k, t] of weights) {
    const g = got.get(k)!;
    expect([k, g.shape]).toEqual([k, t.shape]);
    let err = 0;
    for (let i = 0; i < t.data.length; i++) err = Math.max(err, Math.abs(g.data[i] - t.data[i]) / (tol ? Math.max(Math.abs(t.data[i]), 2 ** -14) : 1));
    expect([k, err <= tol]).toEqual([k, true]);
  }
}

describe('official checkpoints', () => {
  it("train.py's layout: ema equals weights.safetensors exactly, model and optimizer state and args are there", () => {
    const { root } = readTorchCheckpoint(path.join(REF, 'checkpoint_train.pt'));
    expectEqualWeights(checkpointStateDict(root, 'ema'));
    const model = checkpointStateDict(root, 'model');
    // the model is one AdamW step (lr 1e-3) away from the EMA's weights
    let moved = 0;
    for (const [k, t] of weights) moved = Math.max(moved, ...t.data.map((v, i) => Math.abs(v - model.get(k)!.data[i])));
    expect(moved).toBeGreaterThan(1e-4);
    expect(moved).toBeLessThan(2e-3);
    const args = checkpointArgs(root)!;
    expect(args).not.toBeNull();
    expect(Object.keys(args).length).toBeGreaterThan(3);
    const r = root as Map<string, unknown> | Record<string, unknown>;
    const get = (k: string) => (r instanceof Map ? r.get(k) : r[k]);
    expect(get('train_steps')).toBe(1);
    const opt = get('opt') as Record<string, unknown>;
    const state = (opt.state instanceof Map ? [...(opt.state as Map<unknown, any>).values()] : Object.values(opt.state as object)) as Record<
      string,
      TorchTensor
    >[];
    expect(state.length).toBe(weights.size);
    expect(state[0].exp_avg.shape).toEqual(weights.get('pos_embed')!.shape);
  });

  it('a bare state_dict, and its float16 copy to fp16 rounding', () => {
    expectEqualWeights(checkpointStateDict(readTorchCheckpoint(path.join(REF, 'checkpoint_ema_only.pt')).root));
    expectEqualWeights(checkpointStateDict(readTorchCheckpoint(path.join(REF, 'checkpoint_fp16.pt')).root), 2 ** -11);
  });

  it('asks for the other weights when the chosen ones are missing', () => {
    const { root } = readTorchCheckpoint(path.join(REF, 'checkpoint_ema_only.pt'));
    expect(checkpointStateDict(root, 'model').size).toBe(weights.size); // a bare state_dict is the weights, whichever asked
  });
});

describe('bad files are clear errors', () => {
  const good = fs.readFileSync(path.join(REF, 'checkpoint_ema_only.pt'));
  const parse = (b: Uint8Array) => () => parseTorchCheckpoint(b, 'x.pt');

  it('truncated, not a zip, legacy format', () => {
    expect(parse(good.subarray(0, good.length - 100))).toThrow(/^x\.pt: /);
    expect(parse(good.subarray(0, 10))).toThrow(/too short for a zip archive/);
    expect(parse(new TextEncoder().encode('hello world, this is not a checkpoint at all'))).toThrow(/not a zip archive/);
    expect(parse(Uint8Array.from([0x80, 0x02, ...new Array(40).fill(0)]))).toThrow(/legacy \(non-zip\) PyTorch file/);
  });

  it('refuses any other Python global, never running it', () => {
    // a pickle that names os.system, in a zip of torch.save's shape: swap the name of a known global in place
    const bytes = Uint8Array.from(good);
    const text = Buffer.from(bytes).toString('latin1');
    const at = text.indexOf('collections\nOrderedDict\n');
    expect(at).toBeGreaterThan(0);
    bytes.set(Buffer.from('subprocess\nPopenDict__\n', 'latin1'), at);
    expect(parse(Uint8Array.from(bytes))).toThrow(/fails its CRC-32 check/); // damage is caught first
    resealZip(bytes, crc32);
    expect(parse(bytes)).toThrow(/names the Python global subprocess\.PopenDict__.*refused, never imported or run/);
  });

  it('flipped bytes anywhere: an Error or a parse, never a crash or a hang (seeded, 300 cases)', () => {
    let seed = 7;
    const next = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31), seed / 2 ** 31);
    for (let c = 0; c < 300; c++) {
      const bytes = Uint8Array.from(good);
      const n = 1 + Math.floor(next() * 4);
      for (let k = 0; k < n; k++) bytes[Math.floor(next() * bytes.length)] ^= 1 << Math.floor(next() * 8);
      const t0 = Date.now();
      try {
        parseTorchCheckpoint(bytes, 'x.pt');
      } catch (e) {
        expect(e).toBeInstanceOf(Error);
        expect((e as Error).message).toMatch(/^x\.pt: /);
      }
      expect(Date.now() - t0).toBeLessThan(2000);
    }
  });
});
