/**
 * Parser fuzzing (issue #19): mutated .npz files (the zip container and the .npy members inside it) must
 * be a clear Error naming the file, or a correct parse; `computeStatistics` on them (pytorch-fid
 * statistics, ADM feature rows or uint8 image batches) must give finite statistics or a clear Error.
 * `pnpm fuzz` runs more cases (test-utils/fuzz.ts).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { unzipSync, zipSync } from 'fflate';
import { concat, describeFailures, fuzz, fuzzTimeout, mutateBytes, type FuzzRng } from '../../../../test-utils/fuzz';
import type { FeatureExtractor } from './extractor';
import { computeStatistics, type StatisticsResult } from './fid';
import { encodeNpy, readNpz, type NpyArray } from './npz';

const DATA = path.join(__dirname, 'testdata');
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'npz-fuzz-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

/** A .npy of uint8 values (encodeNpy writes floats only). */
function npyU8(data: Uint8Array, shape: number[]): Uint8Array {
  let header = `{'descr': '|u1', 'fortran_order': False, 'shape': (${shape.join(', ')}${shape.length === 1 ? ',' : ''}), }`;
  header = header.padEnd(Math.ceil((10 + header.length + 1) / 64) * 64 - 11, ' ') + '\n';
  const head = new Uint8Array(10 + header.length);
  head.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0]);
  new DataView(head.buffer).setUint16(8, header.length, true);
  head.set(Buffer.from(header, 'latin1'), 10);
  return concat(head, data);
}

/** Seed files: numpy's own (stored zip64, deflated Fortran-order float32, arr_0 features) and ours. */
function seeds(): Uint8Array[] {
  const own = (members: Record<string, Uint8Array>, level: 0 | 6) =>
    zipSync(Object.fromEntries(Object.entries(members).map(([k, v]) => [k, [v, { level }]])) as Parameters<typeof zipSync>[0]);
  const images = Uint8Array.from({ length: 3 * 4 * 4 * 3 }, (_, i) => (i * 53) & 0xff);
  const features = Float64Array.from({ length: 5 * 3 }, (_, i) => Math.sin(i));
  return [
    ...['pytorch_fid_stats.npz', 'compressed_f32.npz', 'features_arr0.npz'].map((f) => new Uint8Array(fs.readFileSync(path.join(DATA, f)))),
    own({ 'arr_0.npy': npyU8(images, [3, 4, 4, 3]) }, 0),
    own({ 'arr_0.npy': npyU8(images.subarray(0, 2 * 5 * 3), [2, 5, 3]) }, 6),
    own({ 'arr_0.npy': encodeNpy(Float32Array.from(features), [5, 3]) }, 6),
    own({ 'mu.npy': encodeNpy(Float64Array.of(0.5, -1), [2]), 'sigma.npy': encodeNpy(Float64Array.of(2, 0.5, 0.5, 1), [2, 2]) }, 0),
  ];
}

/** A header that says what to read: descr, shape, fortran_order, in numpy's dict syntax (or not). */
const DESCRS = ['<f8', '<f4', '>f8', '>f4', '|u1', '<u1', '=f8', '<f2', '<i8', '|b1', '|O', '<c16', 'f8', '', "[('a', '<f8')]"];
const SHAPE_TEXTS = [
  '()',
  '(0,)',
  '(1,)',
  '(3,)',
  '(-1,)',
  '(3.5,)',
  '(abc,)',
  '(3L,)',
  '(1e3,)',
  '(2147483648,)',
  '(9007199254740993,)',
  '(0, 1000000000)',
  '(1000000000, 0)',
  '(1000000, 1000000)',
  '(2, 2, 2, 2, 2)',
  '(2,, 2)',
  '(, )',
  '(-2, -2)',
  '(4294967296, 0, 3)',
];

function mutateNpy(rng: FuzzRng, npy: Uint8Array): { bytes: Uint8Array; what: string } {
  const major = npy[6];
  const offset = major === 1 ? 10 : 12;
  const headerLen = major === 1 ? npy[8] | (npy[9] << 8) : new DataView(npy.buffer, npy.byteOffset).getUint32(8, true);
  const header = Buffer.from(npy.subarray(offset, offset + headerLen)).toString('latin1');
  const body = npy.subarray(offset + headerLen);
  const kind = rng.int(6);
  if (kind <= 2) {
    // a header field replaced (values parsers trip on), the header re-encoded with a correct length
    let text = header;
    let what: string;
    if (kind === 0) {
      const s = rng.pick(SHAPE_TEXTS);
      text = text.replace(/'shape'\s*:\s*\([^)]*\)/, `'shape': ${s}`);
      what = `shape ${s}`;
    } else if (kind === 1) {
      const d = rng.pick(DESCRS);
      text = text.replace(/'descr'\s*:\s*'[^']*'/, `'descr': '${d}'`);
      what = `descr '${d}'`;
    } else {
      const f = rng.pick(['True', 'False', 'None', '1', '']);
      text = rng.chance(0.3) ? text.replace(/'fortran_order'\s*:\s*\w+,?/, '') : text.replace(/'fortran_order'\s*:\s*\w+/, `'fortran_order': ${f}`);
      what = `fortran_order ${f}`;
    }
    const head = new Uint8Array(10);
    head.set(npy.subarray(0, 8));
    head[6] = 1;
    new DataView(head.buffer).setUint16(8, text.length, true);
    const data = rng.chance(0.2) ? body.subarray(0, rng.int(body.length + 1)) : body;
    return { bytes: concat(head, Buffer.from(text, 'latin1'), data), what: `npy ${what}${data !== body ? `, data cut to ${data.length} bytes` : ''}` };
  }
  const m = mutateBytes(rng, npy, [
    { at: 6, width: 2 },
    { at: 8, width: major === 1 ? 2 : 4 },
  ]);
  return { bytes: m.bytes, what: `npy ${m.what}` };
}

/** What a header says, read strictly (numpy's own rules): the shape and dtype a correct parse must have. */
function declared(npy: Uint8Array): { shape: number[]; descr: string; fortran: boolean } | null {
  if (npy.length < 10 || npy[0] !== 0x93 || Buffer.from(npy.subarray(1, 6)).toString('latin1') !== 'NUMPY') return null;
  const offset = npy[6] === 1 ? 10 : npy[6] === 2 || npy[6] === 3 ? 12 : -1;
  if (offset < 0 || npy.length < offset) return null;
  const headerLen = offset === 10 ? npy[8] | (npy[9] << 8) : new DataView(npy.buffer, npy.byteOffset).getUint32(8, true);
  const h = Buffer.from(npy.subarray(offset, offset + headerLen)).toString('latin1');
  const descr = /'descr'\s*:\s*'([<>|=]?[fu]\d)'/.exec(h)?.[1];
  const fortran = /'fortran_order'\s*:\s*(True|False)/.exec(h)?.[1];
  const shape = /'shape'\s*:\s*\(\s*((?:\d+L?\s*,\s*)*(?:\d+L?\s*,?\s*)?)\)/.exec(h)?.[1];
  if (!descr || !fortran || shape === undefined) return null;
  const dims = shape
    .split(',')
    .map((t) => t.trim().replace(/L$/, ''))
    .filter(Boolean)
    .map(Number);
  return { shape: dims, descr, fortran: fortran === 'True' };
}

interface Parsed {
  arrays: Map<string, NpyArray>;
  stats: StatisticsResult;
}

/** A stand-in feature extractor: 3 features per image (mean of each channel). */
const extractor: FeatureExtractor = {
  name: 'channel-means',
  dim: 3,
  async extract(images) {
    const out = new Float64Array(images.length * 3);
    images.forEach((img, i) => {
      for (let p = 0; p < img.width * img.height; p++) for (let c = 0; c < 3; c++) out[i * 3 + c] += img.data[p * 3 + c] / (img.width * img.height);
      out[i * 3] += i; // rows differ, so the covariance is not all zero
    });
    return { features: out };
  },
};

describe('.npz parser fuzzing', () => {
  it(
    'every mutated .npz is a clear error naming the file, or a correct parse with finite statistics',
    async () => {
      const corpus = seeds();
      const members = corpus.map((z) => unzipSync(z));
      let n = 0;
      const originals = corpus.map((z) => readNpz(write(z)));
      function write(bytes: Uint8Array): string {
        const file = path.join(dir, `case-${n++ % 4}.npz`);
        fs.writeFileSync(file, bytes);
        return file;
      }
      const report = await fuzz<{ file: string; seed: number; npy?: { name: string; bytes: Uint8Array } }, Parsed>({
        name: 'npz',
        seed: 'npz-1',
        cases: 1000,
        generate(rng) {
          const seed = rng.int(corpus.length);
          if (rng.chance(0.5)) {
            const m = mutateBytes(rng, corpus[seed]);
            return { input: { file: write(m.bytes), seed }, what: `seed ${seed}: zip ${m.what}` };
          }
          // a member mutated, the zip rebuilt (valid CRCs), stored or deflated
          const names = Object.keys(members[seed]);
          const name = rng.pick(names);
          const m = mutateNpy(rng, members[seed][name]);
          const level = rng.pick([0, 6] as const);
          const zipped = zipSync(
            Object.fromEntries(names.map((k) => [k, [k === name ? m.bytes : members[seed][k], { level }]])) as Parameters<typeof zipSync>[0],
          );
          return { input: { file: write(zipped), seed, npy: { name: name.replace(/\.npy$/, ''), bytes: m.bytes } }, what: `seed ${seed}: ${name}: ${m.what}` };
        },
        async parse({ file }) {
          const arrays = readNpz(file);
          return { arrays, stats: await computeStatistics(file, { extractor, backend: 'js' }) };
        },
        checkError: ({ file }, message) => (message.includes(file) ? undefined : 'does not name the file'),
        check({ seed, npy }, { arrays, stats }) {
          for (const [key, a] of arrays) {
            if (!a.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) return `${key} has shape [${a.shape}]`;
            if (a.data.length !== a.shape.reduce((x, y) => x * y, 1)) return `${key} has ${a.data.length} values for shape [${a.shape}]`;
            if ((a.dtype === 'uint8') !== a.data instanceof Uint8Array) return `${key} is ${a.dtype} in a ${a.data.constructor.name}`;
            if (npy && key === npy.name) {
              const d = declared(npy.bytes);
              if (!d) return `${key} parsed from a header numpy would refuse`;
              if (JSON.stringify(d.shape) !== JSON.stringify(a.shape)) return `${key} has shape [${a.shape}], its header says [${d.shape}]`;
              continue;
            }
            // anything else must read exactly as the seed did (a damaged member must not pass unnoticed)
            const before = originals[seed].get(key);
            if (!before) continue; // a renamed member
            if (JSON.stringify([before.dtype, before.shape]) !== JSON.stringify([a.dtype, a.shape])) return `${key} changed to ${a.dtype} [${a.shape}]`;
            for (let i = 0; i < a.data.length; i++)
              if (!Object.is(a.data[i], before.data[i])) return `${key}[${i}] changed from ${before.data[i]} to ${a.data[i]}`;
          }
          const s = stats.stats;
          if (!(Number.isInteger(s.dim) && s.dim >= 1 && s.mu.length === s.dim && s.sigma.length === s.dim * s.dim)) return `statistics of dim ${s.dim}`;
          if (![...s.mu, ...s.sigma].every(Number.isFinite)) return 'statistics that are not finite';
          return undefined;
        },
      });
      expect(describeFailures(report)).toBe('');
    },
    fuzzTimeout(90_000),
  );

  // One regression case for each bug the fuzzer found (the inputs it failed on, reduced).
  describe('regressions', () => {
    const file = path.join(dir, 'regression.npz');
    const npz = (members: Record<string, Uint8Array>) =>
      fs.writeFileSync(file, zipSync(Object.fromEntries(Object.entries(members).map(([k, v]) => [k, [v, { level: 0 }]])) as Parameters<typeof zipSync>[0]));
    /** A float64 .npy with `header` as its dict text. */
    const npy = (dict: string, data = new Uint8Array(0)) => {
      const head = new Uint8Array(10);
      head.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0]);
      new DataView(head.buffer).setUint16(8, dict.length, true);
      return concat(head, Buffer.from(dict, 'latin1'), data);
    };
    const stats = () => computeStatistics(file, { extractor, backend: 'js' });

    it('uint8 arr_0 of shape (4294967296, 0, 3) holds no bytes (was 2^32 empty images: a hang)', async () => {
      npz({ 'arr_0.npy': npyU8(new Uint8Array(0), [4294967296, 0, 3]) });
      await expect(stats()).rejects.toThrow(`${file}: 'arr_0' has shape [4294967296,0,3]; an image batch needs at least one image of at least 1x1 pixels`);
    });
    it('negative or fractional shapes (were a RangeError "Invalid typed array length: -1", or (-2, -2) read as 4 values)', () => {
      for (const shape of ['(-1,)', '(-2, -2)', '(3.5,)', '(abc,)']) {
        npz({ 'mu.npy': npy(`{'descr': '<f8', 'fortran_order': False, 'shape': ${shape}, }`, new Uint8Array(64)) });
        expect(() => readNpz(file)).toThrow(`${file}:mu: the .npy shape ${shape} is not a tuple of non-negative integers`);
      }
      npz({ 'mu.npy': npy(`{'descr': '<f8', 'fortran_order': False, 'shape': (3L,), }`, new Uint8Array(24)) }); // Python 2's longs
      expect(readNpz(file).get('mu')?.shape).toEqual([3]);
    });
    it('a header without fortran_order (was read as C order)', () => {
      npz({ 'mu.npy': npy(`{'descr': '<f8', 'shape': (2, 2), }`, new Uint8Array(32)) });
      expect(() => readNpz(file)).toThrow(`${file}:mu: malformed .npy header`);
    });
    it('a header length beyond the member (was parsed from the bytes that exist)', () => {
      const bytes = npy(`{'descr': '<f8', 'fortran_order': False, 'shape': (), }`, new Uint8Array(8));
      new DataView(bytes.buffer).setUint16(8, 60000, true);
      npz({ 'mu.npy': bytes });
      expect(() => readNpz(file)).toThrow(`${file}:mu: truncated .npy (the header needs 60000 bytes`);
    });
    it('a damaged member (was read as different numbers: fflate checks no CRC)', () => {
      const zip = zipSync({ 'mu.npy': [encodeNpy(Float64Array.of(1, 2), [2]), { level: 0 }] });
      const one = Buffer.from(zip).indexOf(Buffer.from([0, 0, 0, 0, 0, 0, 0xf0, 0x3f])); // 1.0, little endian
      zip[one + 6] ^= 0x10;
      fs.writeFileSync(file, zip);
      expect(() => readNpz(file)).toThrow(`${file} is not a numpy .npz (zip) file: mu.npy fails its CRC-32 check (the file is damaged)`);
    });
    it('an entry count the central directory cannot hold (fflate loops over up to 2^32 entries)', () => {
      const zip = zipSync({ 'mu.npy': [encodeNpy(Float64Array.of(1), [1]), { level: 0 }] });
      const end = zip.length - 22;
      new DataView(zip.buffer).setUint16(end + 10, 0xffff, true);
      fs.writeFileSync(file, zip);
      expect(() => readNpz(file)).toThrow('the central directory cannot hold the 65535 entries it announces');
    });
    it('feature rows that are not finite, or too wide for a covariance (errors did not name the file; 2 x 100000 asked for 80 GB)', async () => {
      npz({ 'arr_0.npy': encodeNpy(Float64Array.of(1, NaN, 3, 4), [2, 2]) });
      await expect(stats()).rejects.toThrow(`${file}: 'arr_0': feature row 0, column 1 is NaN; features must be finite`);
      npz({ 'arr_0.npy': encodeNpy(new Float32Array(2 * 100_000), [2, 100_000]) });
      await expect(stats()).rejects.toThrow(`${file}: 'arr_0' has 100000 features per row; expected 1 to 16384`);
    });
  });
});
