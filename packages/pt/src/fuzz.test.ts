/**
 * The .pt reader under the shared fuzz harness (test-utils/fuzz.ts; `pnpm fuzz` runs it longer): the
 * official bare state_dict and train.py checkpoint with flipped bytes, truncations, huge or out-of-range zip
 * fields, and with the pickle itself mutated and resealed (valid CRCs), so damage inside the pickle reaches the
 * unpickler (bad opcodes, storage offsets and sizes out of range). Each case is a clear Error naming the file
 * or a parse whose state_dict has the official shapes.
 */
import * as fs from 'fs';
import * as path from 'path';
import { crc32 } from '@causalfusion/safetensors';
import { describeFailures, fuzz, fuzzTimeout, mutateBytes } from '../../../test-utils/fuzz';
import { resealZip } from '../../../test-utils/zip';
import { checkpointStateDict, parseTorchCheckpoint } from './index';

const REF = process.env.CAUSALFUSION_REFERENCE ?? path.resolve(__dirname, '../../../../shared/reference/official_tiny');
const SEEDS = ['checkpoint_ema_only.pt', 'checkpoint_train.pt'].map((f) => new Uint8Array(fs.readFileSync(path.join(REF, f))));

/** Where the pickle lies in an archive (between its local header's name and the next entry). */
function pickleRange(bytes: Uint8Array): [number, number] {
  const text = Buffer.from(bytes).toString('latin1');
  const start = text.indexOf('\x80\x02');
  const end = text.indexOf('PK\x03\x04', start);
  return [start, end];
}

describe('.pt reader fuzzing', () => {
  it(
    'every damaged checkpoint is a clear error naming the file, or one with the official shapes',
    async () => {
      const report = await fuzz<Uint8Array, Map<string, { shape: number[]; data: Float32Array }>>({
        name: '.pt checkpoint (pt parseTorchCheckpoint)',
        seed: 'pt-1',
        cases: 200,
        generate(rng) {
          const seed = rng.pick(SEEDS);
          if (rng.chance(0.5)) {
            // damage inside the pickle, CRCs resealed: the unpickler must refuse it
            const bytes = Uint8Array.from(seed);
            const [start, end] = pickleRange(bytes);
            const flips = 1 + rng.int(4);
            for (let k = 0; k < flips; k++) bytes[start + rng.int(end - start)] ^= 1 << rng.int(8);
            return { input: resealZip(bytes, crc32), what: `${flips} bit flips in the pickle, resealed` };
          }
          const m = mutateBytes(rng, seed);
          return { input: m.bytes, what: m.what };
        },
        parse: (bytes) => checkpointStateDict(parseTorchCheckpoint(bytes, 'x.pt').root, 'ema', 'x.pt'),
        checkError: (_bytes, message) => (message.startsWith('x.pt: ') ? undefined : 'names no file'),
        check(_bytes, dict) {
          for (const [k, t] of dict) {
            const n = t.shape.reduce((a, b) => a * b, 1);
            if (t.data.length !== n) return `${k} has ${t.data.length} values for shape [${t.shape}]`;
          }
          return undefined;
        },
      });
      expect(describeFailures(report)).toBe('');
    },
    fuzzTimeout(60_000),
  );
});
