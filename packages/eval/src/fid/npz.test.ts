import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseNpy, readNpz, saveStatsNpz, statsFromNpzArrays, writeNpz } from './npz';

const DATA = path.join(__dirname, 'testdata');
const SIGMA = [2.0, 0.5, 0.1, 0.5, 1.0, -0.2, 0.1, -0.2, 0.75];
const tmpDirs: string[] = [];
const tmpDir = (): string => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'npz-'));
  tmpDirs.push(dir);
  return dir;
};
afterAll(() => tmpDirs.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));

describe('.npz statistics', () => {
  test('reads np.savez output (stored, zip64 members) as pytorch-fid writes it', () => {
    const arrays = readNpz(path.join(DATA, 'pytorch_fid_stats.npz'));
    expect(arrays.get('mu')?.dtype).toBe('float64');
    const stats = statsFromNpzArrays(arrays, 'x')!;
    expect([...stats.mu]).toEqual([0.5, -1.25, 3.0]);
    expect([...stats.sigma]).toEqual(SIGMA);
  });

  test('reads np.savez_compressed float32 arrays in Fortran order', () => {
    const arrays = readNpz(path.join(DATA, 'compressed_f32.npz'));
    expect(arrays.get('sigma')?.dtype).toBe('float32');
    const stats = statsFromNpzArrays(arrays, 'x')!;
    expect([...stats.sigma]).toEqual(SIGMA.map(Math.fround));
  });

  test('arr_0 without mu/sigma is left to the caller (features or images)', () => {
    const arrays = readNpz(path.join(DATA, 'features_arr0.npz'));
    expect(statsFromNpzArrays(arrays, 'x')).toBeUndefined();
    expect(arrays.get('arr_0')?.shape).toEqual([4, 3]);
  });

  test('write then read round-trips float64 exactly; header is numpy-aligned', () => {
    const dir = tmpDir();
    const file = path.join(dir, 's.npz');
    const mu = Float64Array.from([1 / 3, -2e-300, 7]);
    saveStatsNpz(file, { mu, sigma: Float64Array.from(SIGMA), dim: 3 });
    const stats = statsFromNpzArrays(readNpz(file), file)!;
    expect([...stats.mu]).toEqual([...mu]);
    expect([...stats.sigma]).toEqual(SIGMA);
    writeNpz(file, { a: { data: Float32Array.from([1.5, 2.5]), shape: [2] } });
    const a = readNpz(file).get('a')!;
    expect(a.dtype).toBe('float32');
    expect([...a.data]).toEqual([1.5, 2.5]);
  });

  test('bad inputs name the problem', () => {
    const dir = tmpDir();
    const file = path.join(dir, 'bad.npz');
    writeNpz(file, { mu: { data: new Float64Array(3), shape: [3] }, sigma: { data: new Float64Array(4), shape: [2, 2] } });
    expect(() => statsFromNpzArrays(readNpz(file), file)).toThrow(/'sigma' has shape \[2,2\], expected \[3, 3\]/);
    writeNpz(file, { mu: { data: new Float64Array(3), shape: [3] } });
    expect(() => statsFromNpzArrays(readNpz(file), file)).toThrow(/has 'mu' but not 'sigma'/);
    writeNpz(file, { other: { data: new Float64Array(3), shape: [3] } });
    expect(() => statsFromNpzArrays(readNpz(file), file)).toThrow(/no 'mu'\/'sigma'.*found: other/);
    fs.writeFileSync(file, 'not a zip');
    expect(() => readNpz(file)).toThrow(/not a numpy .npz/);
    expect(() => parseNpy(new Uint8Array(20))).toThrow(/magic/);
  });
});
