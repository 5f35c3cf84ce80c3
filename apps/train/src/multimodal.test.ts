import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { initBackend } from '@causalfusion/backend';
import { readSafetensors } from '@causalfusion/safetensors';
import { parseTrainArgs } from './config';
import { parseMultimodalTrainArgs, trainMultimodal } from './multimodal';

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
const tinyArgs = (out: string, steps: number) => ['--task', 'multimodal', '--preset', 'multimodal-tiny', '--out', out, '--steps', String(steps), '--checkpoint-every', '2', '--log-every', '1'];

function weights(dir: string): Map<string, Float32Array> {
  return new Map([...readSafetensors(path.join(dir, 'checkpoint', 'model.safetensors')).tensors].map(([k, t]) => [k, t.data]));
}

describe('--task multimodal', () => {
  it('is parsed by the training command line, and its flags are checked', () => {
    const cmd = parseTrainArgs(tinyArgs(path.join(root, 'a'), 4));
    expect(cmd.multimodal?.config).toMatchObject({ steps: 4, checkpointEvery: 2 });
    expect(() => parseMultimodalTrainArgs([...tinyArgs(path.join(root, 'a'), 4), '--caption-prob', '1.5'])).toThrow(/caption-prob must be in \[0, 1\]/);
    expect(() => parseMultimodalTrainArgs([...tinyArgs(path.join(root, 'a'), 4), '--workers', '2'])).toThrow(/one replica/);
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
});
