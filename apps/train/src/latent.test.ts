import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { createRng } from '@causalfusion/rng';
import { LatentCacheWriter, LATENT_CACHE_FORMAT, writeVaeConfig, type LatentCacheHeader } from '@causalfusion/vae';
import { makeTrainConfig, modelConfigOf, parseTrainArgs } from './config';
import { LatentBatchSampler, loadLatentData } from './dataset';
import { modelMeta } from './export';

let root: string;
let vaeDir: string;
let cacheFile: string;
const C = 4;
const n = C * 8 * 8;

/** A VAE folder's vae.json (no graphs: nothing here runs the VAE) and a 3-image cache with flips. */
beforeAll(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'cf-latent-'));
  vaeDir = path.join(root, 'vae');
  const vae = writeVaeConfig(vaeDir, { name: 'tiny', scaleFactor: 0.5, latentChannels: C, downsample: 2, imageSize: 16 });
  const header: LatentCacheHeader = {
    format: LATENT_CACHE_FORMAT,
    version: 1,
    vae,
    latentShape: [C, 8, 8],
    count: 3,
    classNames: ['a', 'b'],
    flip: true,
    values: ['mean', 'logvar'],
    dtype: 'float32',
    source: { data: 'test', fingerprint: 'none' },
  };
  cacheFile = path.join(root, 'latents.bin');
  const writer = new LatentCacheWriter(cacheFile, header, [0, 1, 1]);
  // record i, view v: mean 10 * i + v, logvar log(4) (std 2)
  const records = new Float32Array(3 * 2 * 2 * n);
  for (let i = 0; i < 3; i++)
    for (let v = 0; v < 2; v++) {
      const at = (i * 2 + v) * 2 * n;
      records.fill(10 * i + v, at, at + n);
      records.fill(Math.log(4), at + n, at + 2 * n);
    }
  writer.append(records);
  writer.finish();
});
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

describe('--tokenizer vae:DIR', () => {
  it('takes the image size from the VAE and the model geometry from its latents', () => {
    const cmd = parseTrainArgs(['--preset', 'tiny', '--out', path.join(root, 'run'), '--tokenizer', `vae:${vaeDir}`, '--data', cacheFile, '--patch-size', '2']);
    expect(cmd.config.tokenizer).toBe(`vae:${path.resolve(vaeDir)}`);
    expect(cmd.explicit.tokenizer).toBe(cmd.config.tokenizer);
    expect([cmd.config.imageSize, cmd.config.channels]).toEqual([16, 3]);
    const m = modelConfigOf(cmd.config, 2);
    expect([m.inputSize, m.latentChannels, m.patchSize]).toEqual([8, C, 2]);
    const meta = modelMeta(cmd.config, ['a', 'b'], { command: 'x', steps: 1, wallSeconds: 0, backend: 'cpu', workers: 1 });
    expect(meta.tokenizer).toEqual({
      kind: 'vae',
      dir: path.resolve(vaeDir),
      name: 'tiny',
      scale: 0.5,
      latentChannels: C,
      latentSize: 8,
      imageSize: 16,
      patchSize: 2,
    });
  });

  it('rejects a bad tokenizer, a patch size that does not divide the latent, pixel data', () => {
    const out = path.join(root, 'run');
    expect(() => parseTrainArgs(['--out', out, '--tokenizer', 'vqgan'])).toThrow(/--tokenizer must be pixel or vae:DIR/);
    expect(() => parseTrainArgs(['--out', out, '--tokenizer', `vae:${root}/none`])).toThrow(/--tokenizer vae:.*none: VAE folder .* does not exist/);
    expect(() => parseTrainArgs(['--preset', 'tiny', '--out', out, '--tokenizer', `vae:${vaeDir}`])).toThrow(/patch size 7 does not divide the latent side 8/);
    expect(() => parseTrainArgs(['--preset', 'tiny', '--out', out, '--tokenizer', `vae:${vaeDir}`, '--patch-size', '2', '--image-size', '32'])).toThrow(
      /works on 16-pixel images; drop --image-size/,
    );
    const config = makeTrainConfig('tiny', { out, tokenizer: `vae:${vaeDir}`, patchSize: 2 });
    expect(() => loadLatentData(config)).toThrow(/trains on a latent cache, and --data mnist is not one; encode the images once with `causalfusion encode/);
  });

  it('draws z = (mean + std * eps) * scale, the flipped latent half of the time', () => {
    const data = loadLatentData(makeTrainConfig('tiny', { out: path.join(root, 'run'), tokenizer: `vae:${vaeDir}`, patchSize: 2, data: cacheFile }));
    try {
      expect([data.count, data.scale, data.classNames]).toEqual([3, 0.5, ['a', 'b']]);
      const sampler = new LatentBatchSampler(data, 6, 0);
      const rng = createRng(1);
      const { x, labels } = sampler.batch(0, rng);
      // the same draws by hand: per sample a flip uniform, then eps
      const check = createRng(1);
      // 6 samples of 3 images: two epochs, each in its own order
      const orders = [0, 1].map((e) => createRng(`0:epoch:${e}`).permutation(3));
      const views: number[] = [];
      for (let j = 0; j < 6; j++) {
        const i = orders[Math.floor(j / 3)][j % 3];
        const view = check.uniform() < 0.5 ? 1 : 0;
        views.push(view);
        const eps = check.fillNormal(new Float32Array(n));
        expect(labels[j]).toBe([0, 1, 1][i]);
        for (let k = 0; k < n; k += 37) expect(x[j * n + k]).toBeCloseTo((10 * i + view + 2 * eps[k]) * 0.5, 5);
      }
      expect(views).toContain(0);
      expect(views).toContain(1);
    } finally {
      data.cache.close();
    }
  });
});
