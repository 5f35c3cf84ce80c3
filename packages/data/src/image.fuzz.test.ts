/**
 * Parser fuzzing (issue #19): mutated PNG and JPEG files fed to the image-folder decoder (readImage, then
 * the official center crop), and mutated IDX files to parseIdx. Each must be a clear Error naming the
 * file, or a decoded image whose buffer matches its reported size. The image dimensions in the PNG
 * IHDR and JPEG SOF are also set to huge values with the PNG chunk CRC fixed, so the decoder itself sees
 * them. `pnpm fuzz` runs more cases (test-utils/fuzz.ts).
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import sharp from 'sharp';
import { describeFailures, fuzz, fuzzTimeout, mutateBytes, mutateImageHeader } from '../../../test-utils/fuzz';
import { centerCropArr, readImage } from './image-folder';
import { parseIdx } from './mnist';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'image-fuzz-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

/** Seed images: gray, RGB and RGBA PNG (8/16 bit, palette, interlaced), baseline/progressive/gray JPEG. */
async function seeds(): Promise<{ name: string; bytes: Uint8Array }[]> {
  const pixels = (w: number, h: number, c: number) => Buffer.from(Array.from({ length: w * h * c }, (_, i) => (i * 31 + (i >> 5) * 7) & 0xff));
  const raw = (w: number, h: number, c: 1 | 3 | 4) => sharp(pixels(w, h, c), { raw: { width: w, height: h, channels: c } });
  const make = async (name: string, img: sharp.Sharp) => ({ name, bytes: new Uint8Array(await img.toBuffer()) });
  return Promise.all([
    make('gray.png', raw(28, 28, 1).toColourspace('b-w').png()),
    make('rgb.png', raw(16, 12, 3).png()),
    make('rgba.png', raw(9, 17, 4).png()),
    make('palette.png', raw(16, 16, 3).png({ palette: true, colours: 8 })),
    make('deep.png', raw(8, 8, 3).toColourspace('rgb16').png()),
    make('interlaced.png', raw(20, 20, 3).png({ progressive: true })),
    make('rgb.jpg', raw(24, 16, 3).jpeg({ quality: 90 })),
    make('progressive.jpg', raw(16, 16, 3).jpeg({ progressive: true })),
    make('gray.jpg', raw(12, 12, 1).toColourspace('b-w').jpeg()),
  ]);
}

describe('image input fuzzing (PNG / JPEG through sharp)', () => {
  it(
    'every mutated image is a clear error naming the file, or pixels of the size reported',
    async () => {
      const corpus = await seeds();
      let n = 0;
      const report = await fuzz<{ file: string; channels: 1 | 3 }, { width: number; height: number; data: Uint8Array; crop: Uint8Array; channels: number }>({
        name: 'image (data readImage)',
        seed: 'image-1',
        cases: 1000,
        perCaseMs: 5000,
        generate(rng) {
          const seed = rng.pick(corpus);
          const m = rng.chance(0.3) ? mutateImageHeader(rng, seed.name, seed.bytes) : mutateBytes(rng, seed.bytes);
          const file = path.join(dir, `case-${n++ % 4}-${seed.name}`);
          fs.writeFileSync(file, m.bytes);
          const channels = rng.pick([1, 3] as const);
          return { input: { file, channels }, what: `${seed.name}: ${m.what}, read as ${channels} channel(s)` };
        },
        async parse({ file, channels }) {
          const img = await readImage(file, channels);
          return { ...img, channels, crop: await centerCropArr(img.data, img.width, img.height, channels, 8) };
        },
        checkError: ({ file }, message) => (message.includes(file) ? undefined : 'does not name the file'),
        check(_input, r) {
          if (!(Number.isInteger(r.width) && r.width >= 1 && Number.isInteger(r.height) && r.height >= 1)) return `size ${r.width}x${r.height}`;
          if (r.data.length !== r.width * r.height * r.channels) return `${r.data.length} bytes for ${r.width}x${r.height}x${r.channels}`;
          if (r.crop.length !== 8 * 8 * r.channels) return `a crop of ${r.crop.length} bytes`;
          return undefined;
        },
      });
      expect(describeFailures(report)).toBe('');
    },
    fuzzTimeout(120_000),
  );

  it(
    'every mutated IDX file is a clear error naming it, or dims that describe the data exactly',
    async () => {
      const seedsIdx = [
        Uint8Array.from([0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 2, ...Array.from({ length: 12 }, (_, i) => i * 20)]),
        Uint8Array.from([0, 0, 8, 1, 0, 0, 0, 5, 1, 2, 3, 4, 5]),
      ];
      const report = await fuzz<Uint8Array, ReturnType<typeof parseIdx>>({
        name: 'idx (MNIST)',
        seed: 'idx-1',
        cases: 1500,
        generate(rng) {
          const m = mutateBytes(
            rng,
            rng.pick(seedsIdx),
            [3, 4, 8, 12].map((at) => ({ at, width: 4 as const, big: true })),
          );
          return { input: m.bytes, what: m.what };
        },
        parse: (bytes) => parseIdx(bytes, 'fuzz-idx3-ubyte'),
        checkError: (_b, message) => (message.includes('fuzz-idx3-ubyte') ? undefined : 'does not name the file'),
        check: (bytes, r) =>
          r.data.length === r.dims.reduce((a, b) => a * b, 1) && r.data.length === bytes.length - 4 - 4 * r.dims.length
            ? undefined
            : `dims ${r.dims} for ${r.data.length} bytes`,
      });
      expect(describeFailures(report)).toBe('');
    },
    fuzzTimeout(30_000),
  );
});
