/**
 * Sharded statistics: shards' partial statistics, written and read back as .npz and merged, give the
 * statistics (and the Frechet distance) of all rows at once.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import type { FeatureExtractor } from './extractor';
import { partialStatisticsFromImages, statisticsFromImages } from './fid';
import { frechetDistance } from './frechet';
import { readNpz, writeNpz } from './npz';
import { readPartialNpz, savePartialNpz } from './partial';
import { FeatureStatistics, mergePartials } from './statistics';

function rows(n: number, dim: number, seed: number): Float64Array {
  const out = new Float64Array(n * dim);
  let s = seed;
  for (let i = 0; i < out.length; i++) {
    s = (s * 1103515245 + 12345) % 2 ** 31;
    out[i] = (s / 2 ** 31) * 4 - 2 + (i % dim) * 0.1;
  }
  return out;
}

describe('partial statistics of shards', () => {
  it('merged shards (through .npz) equal the statistics of all rows, and the FID to 1e-9', async () => {
    const dim = 8;
    const all = rows(103, dim, 1);
    const whole = new FeatureStatistics(dim, { backend: 'js' });
    for (let start = 0; start < 103; start += 10) await whole.add(all.subarray(start * dim, Math.min(103, start + 10) * dim));
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cf-partial-'));
    const bounds = [0, 17, 18, 60, 103]; // uneven shards, one of a single row
    const files: string[] = [];
    for (let s = 0; s + 1 < bounds.length; s++) {
      const acc = new FeatureStatistics(dim, { backend: 'js' });
      await acc.add(all.subarray(bounds[s] * dim, bounds[s + 1] * dim));
      files.push(path.join(dir, `part-${s}.npz`));
      savePartialNpz(files[s], acc.partial());
    }
    const merged = mergePartials(files.map(readPartialNpz));
    expect(merged.count).toBe(103);
    const a = whole.toStats();
    const b = merged.toStats();
    for (let i = 0; i < a.sigma.length; i++) expect(Math.abs(a.sigma[i] - b.sigma[i])).toBeLessThan(1e-12);
    const ref = { mu: new Float64Array(dim).fill(0.3), sigma: Float64Array.from({ length: dim * dim }, (_, i) => (i % (dim + 1) === 0 ? 1 : 0)), dim };
    expect(Math.abs((await frechetDistance(a, ref)).distance - (await frechetDistance(b, ref)).distance)).toBeLessThan(1e-9);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('refuses shards of another dimension and files without partial statistics', async () => {
    const acc = new FeatureStatistics(4, { backend: 'js' });
    expect(() => acc.merge({ dim: 3, count: 2, mean: new Float64Array(3), m2: new Float64Array(9) })).toThrow(/different feature extractors/);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cf-partial-'));

    writeNpz(path.join(dir, 'stats.npz'), { mu: { data: new Float64Array(2), shape: [2] } });
    expect(() => readPartialNpz(path.join(dir, 'stats.npz'))).toThrow(/not the partial statistics of a shard.*found mu/);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('records which shard of how many (and of how many images, with which features) a part holds', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cf-partial-'));
    const p = { dim: 2, count: 3, mean: Float64Array.of(1, 2), m2: Float64Array.of(4, 1, 1, 5) };
    const file = path.join(dir, 'part-1.npz');
    savePartialNpz(file, p, { index: 1, count: 4, total: 12, features: 'pool3 \u00e9' });
    const back = readPartialNpz(file);
    expect(back).toEqual({ ...p, shard: { index: 1, count: 4, total: 12, features: 'pool3 \u00e9' } });
    // the name is a uint8 array, as numpy writes one (np.frombuffer(name.encode(), np.uint8))
    expect(readNpz(file).get('partial_features')!.dtype).toBe('uint8');
    savePartialNpz(file, p);
    expect(readPartialNpz(file).shard).toBeUndefined();
    expect(() => savePartialNpz(file, p, { index: 4, count: 4, total: 12 })).toThrow(/shard 4\/4 of 12 images is not a shard/);
    writeNpz(file, {
      partial_count: { data: Float64Array.of(20), shape: [1] },
      partial_mean: { data: p.mean, shape: [2] },
      partial_m2: { data: p.m2, shape: [2, 2] },
      partial_shard: { data: Float64Array.of(0, 2), shape: [2] },
      partial_total: { data: Float64Array.of(12), shape: [1] },
    });
    expect(() => readPartialNpz(file)).toThrow(/holds 20 images, more than the 12 of all shards/);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('partialStatisticsFromImages: an empty shard is count 0; shards merge into statisticsFromImages', async () => {
    // a stand-in extractor: the features of image i are a fixed function of its pixels
    const extractor: FeatureExtractor = {
      name: 'test',
      dim: 3,
      async extract(images) {
        return { features: Float32Array.from(images.flatMap((im) => [im.data[0], im.data[1] * 0.5, (im.data[0] * im.data[1]) % 7])) };
      },
    };
    const load = async (i: number) => ({ width: 1, height: 1, data: Uint8Array.of((i * 37) % 11, (i * 13) % 5, 0) });
    const empty = await partialStatisticsFromImages(0, load, extractor);
    expect(empty).toEqual({ dim: 3, count: 0, mean: new Float64Array(3), m2: new Float64Array(9) });
    const shard = (from: number, to: number) => partialStatisticsFromImages(to - from, (i) => load(from + i), extractor, { batchSize: 2 });
    const merged = mergePartials([await shard(0, 4), empty, await shard(4, 9)]).toStats();
    const whole = (await statisticsFromImages(9, load, extractor, { batchSize: 3 })).stats;
    for (let i = 0; i < 9; i++) expect(merged.sigma[i]).toBeCloseTo(whole.sigma[i], 12);
    for (let i = 0; i < 3; i++) expect(merged.mu[i]).toBeCloseTo(whole.mu[i], 12);
  });
});
