import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vm from 'node:vm';
import { FeatureStatistics } from './statistics';
import { frechetDistance } from './frechet';

// onnxruntime-node returns typed arrays of Node's main realm; jest's realm has its own constructors.
for (const name of ['Float32Array', 'Float64Array', 'Int32Array', 'Uint8Array', 'BigInt64Array']) {
  (globalThis as Record<string, unknown>)[name] = vm.runInThisContext(name);
}

const ref = JSON.parse(fs.readFileSync(path.resolve(__dirname, '../../../../../shared/reference/frechet.json'), 'utf8')) as {
  cases: { name: string; features1?: number[][]; features2?: number[][]; mu1: number[]; sigma1: number[][]; expected: { frechet_distance: number } }[];
};

describe('streaming statistics equal np.mean / np.cov', () => {
  for (const c of ref.cases.filter((x) => x.features1)) {
    test(`${c.name}: batches of 7 and 64, JS and onnxruntime products`, async () => {
      const dim = c.features1![0].length;
      for (const [batch, backend] of [
        [7, 'js'],
        [64, 'onnxruntime'],
      ] as const) {
        const acc = new FeatureStatistics(dim, { backend });
        const rows = c.features1!;
        for (let i = 0; i < rows.length; i += batch) await acc.add(Float64Array.from(rows.slice(i, i + batch).flat()));
        const stats = acc.toStats();
        expect(acc.count).toBe(rows.length);
        const sigma = c.sigma1.flat();
        const scale = Math.max(...sigma.map(Math.abs));
        for (let j = 0; j < dim; j++) expect(Math.abs(stats.mu[j] - c.mu1[j])).toBeLessThan(1e-12 * (1 + Math.abs(c.mu1[j])));
        for (let j = 0; j < sigma.length; j++) expect(Math.abs(stats.sigma[j] - sigma[j])).toBeLessThan(1e-12 * scale);
      }
    });
  }

  test('FID straight from the feature matrices of case b', async () => {
    const c = ref.cases.find((x) => x.name.startsWith('b_'))!;
    const dim = c.features1![0].length;
    const stats = [];
    for (const f of [c.features1!, c.features2!]) {
      const acc = new FeatureStatistics(dim);
      await acc.add(Float64Array.from(f.flat()));
      stats.push(acc.toStats());
    }
    const r = await frechetDistance(stats[0], stats[1]);
    expect(Math.abs(r.distance - c.expected.frechet_distance)).toBeLessThan(1e-6 * c.expected.frechet_distance);
  });

  test('bad input', async () => {
    const acc = new FeatureStatistics(3);
    await expect(acc.add(new Float64Array(4))).rejects.toThrow(/not a multiple of the dimension 3/);
    await expect(acc.add(Float64Array.from([1, NaN, 2]))).rejects.toThrow(/row 0, column 1 is NaN/);
    await acc.add(Float64Array.from([1, 2, 3]));
    expect(() => acc.toStats()).toThrow(/at least 2 feature rows, got 1/);
  });
});
