/**
 * Sharded statistics: shards' partial statistics, written and read back as .npz and merged, give the
 * statistics (and the Frechet distance) of all rows at once.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { frechetDistance } from './frechet';
import { writeNpz } from './npz';
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
});
