import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import sharp from 'sharp';
import { PixelTokenizer } from '@causalfusion/data';
import { encodeImageFolder, openLatentCache } from './cache';
import { imagesToNchw, latentsToTokens, nchwToImages, tokensToLatents, VaeTokenizer } from './tokens';
import { loadVae, Vae } from './vae';
import { makeTinyVaeFolder, maxAbsDiff } from './reference.test-util';

jest.setTimeout(60_000);

let tmp: string;
let data: string;
let vae: Vae;

/** 5 images in 2 classes, 20x16 (center-cropped to 16x16 by the encoder's loader). */
beforeAll(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'vae-cache-'));
  data = path.join(tmp, 'data');
  for (let i = 0; i < 5; i++) {
    const cls = i < 3 ? 'cat' : 'dog';
    fs.mkdirSync(path.join(data, cls), { recursive: true });
    const px = Buffer.alloc(20 * 16 * 3);
    for (let j = 0; j < px.length; j++) px[j] = (j * (7 + i) + 31 * i) % 256;
    await sharp(px, { raw: { width: 20, height: 16, channels: 3 } })
      .png()
      .toFile(path.join(data, cls, `${i}.png`));
  }
  await makeTinyVaeFolder(path.join(tmp, 'vae'));
  vae = await loadVae(path.join(tmp, 'vae'), { threads: 1 });
});
afterAll(async () => {
  await vae?.release();
  fs.rmSync(tmp, { recursive: true, force: true });
});

describe('latent tokens', () => {
  it('use the pixel tokenizer layout, and round-trip', () => {
    // an RGB image through the pixel tokenizer and as a 3-channel latent give the same tokens
    const pixels = Uint8Array.from({ length: 2 * 8 * 8 * 3 }, (_, i) => (i * 37) % 256);
    const pixel = new PixelTokenizer({ imageSize: 8, channels: 3, patchSize: 2 });
    expect(latentsToTokens(imagesToNchw(pixels, 8), 3, 8, 2)).toEqual(pixel.encode(pixels));
    const z = Float32Array.from({ length: 2 * 4 * 8 * 8 }, (_, i) => Math.sin(i));
    expect(tokensToLatents(latentsToTokens(z, 4, 8, 4), 4, 8, 4)).toEqual(z);
    expect(nchwToImages(imagesToNchw(pixels, 8), 8)).toEqual(pixels);
    expect(() => latentsToTokens(z, 4, 8, 3)).toThrow(/patch size 3 does not divide the latent side 8/);
  });

  it('VaeTokenizer: scaled posterior means as tokens, decoded through z / scale', async () => {
    const tok = new VaeTokenizer(vae, 2);
    expect([tok.grid, tok.numTokens, tok.tokenDim, tok.pixelsPerToken]).toEqual([4, 16, 16, 4]);
    const images = Uint8Array.from({ length: 16 * 16 * 3 }, (_, i) => (i * 13) % 256);
    const tokens = await tok.encode(images);
    const mean = (await vae.encode(imagesToNchw(images, 16))).mean;
    expect(
      maxAbsDiff(
        tokensToLatents(tokens, 4, 8, 2),
        mean.map((v) => v * 0.2325),
      ),
    ).toBeLessThan(1e-6);
    const decoded = await tok.decode(tokens);
    expect(decoded).toEqual(nchwToImages(await vae.decode(mean), 16));
    await expect(tok.decode(new Float32Array(10))).rejects.toThrow(/not a whole number of 16 tokens of 16 values/);
  });
});

describe('latent caches', () => {
  it("hold each image's posterior and its flipped copy's, with labels and class names", async () => {
    const out = path.join(tmp, 'latents.bin');
    const seen: number[] = [];
    const { header, resumedAt } = await encodeImageFolder({ data, vae, out, batchSize: 2, onProgress: (d) => seen.push(d) });
    expect(resumedAt).toBe(0);
    expect(seen).toEqual([0, 2, 4, 5]);
    expect(fs.existsSync(`${out}.partial`) || fs.existsSync(`${out}.progress.json`)).toBe(false);
    const cache = openLatentCache(out);
    try {
      expect(cache.header).toEqual(header);
      expect([cache.count, cache.views, cache.latentLength]).toEqual([5, 2, 256]);
      expect(cache.classNames).toEqual(['cat', 'dog']);
      expect([...cache.labels]).toEqual([0, 0, 0, 1, 1]);
      // image 3 encoded by hand: the cropped image and its mirror image
      const { centerCropArr, flipHorizontal, readImage } = await import('@causalfusion/data');
      const { data: raw, width, height } = await readImage(path.join(data, 'dog', '3.png'), 3);
      const img = await centerCropArr(raw, width, height, 3, 16);
      const flipped = img.slice();
      flipHorizontal(flipped, 16, 16, 3);
      const p = await vae.encode(imagesToNchw(Uint8Array.from([...img, ...flipped]), 16));
      const r0 = cache.read(3, 0);
      const r1 = cache.read(3, 1);
      expect(maxAbsDiff(r0.mean, p.mean.subarray(0, 256))).toBeLessThan(1e-5);
      expect(maxAbsDiff(r0.logvar, p.logvar.subarray(0, 256))).toBeLessThan(1e-5);
      expect(maxAbsDiff(r1.mean, p.mean.subarray(256))).toBeLessThan(1e-5);
      expect(() => cache.read(5)).toThrow(/latent 5 is out of range: the cache holds 5/);
    } finally {
      cache.close();
    }
    await expect(encodeImageFolder({ data, vae, out })).rejects.toThrow(/latents.bin already exists/);
  });

  it('resume an interrupted run where it stopped, to the same bytes', async () => {
    const full = path.join(tmp, 'full.bin');
    await encodeImageFolder({ data, vae, out: full, batchSize: 2, flip: false });
    const out = path.join(tmp, 'resumed.bin');
    const interrupt = (done: number) => {
      if (done === 4) throw new Error('interrupted');
    };
    await expect(encodeImageFolder({ data, vae, out, batchSize: 2, flip: false, onProgress: interrupt })).rejects.toThrow('interrupted');
    expect(JSON.parse(fs.readFileSync(`${out}.progress.json`, 'utf8'))).toEqual({ done: 4, count: 5 });
    const { resumedAt } = await encodeImageFolder({ data, vae, out, batchSize: 3, flip: false });
    expect(resumedAt).toBe(4);
    expect(fs.readFileSync(out).equals(fs.readFileSync(full))).toBe(true);
    expect(openLatentCache(out).views).toBe(1);
  });

  it('a truncated or foreign file is a clear error', () => {
    const bad = path.join(tmp, 'bad.bin');
    fs.writeFileSync(bad, 'hello world, not latents');
    expect(() => openLatentCache(bad)).toThrow(/is not a latent cache \(no CFLATENT signature\)/);
    const full = fs.readFileSync(path.join(tmp, 'full.bin'));
    fs.writeFileSync(bad, full.subarray(0, full.length - 4));
    expect(() => openLatentCache(bad)).toThrow(/should hold \d+ bytes \(5 images\), it has \d+; re-run causalfusion encode/);
  });
});
