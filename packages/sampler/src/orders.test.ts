import { createRng } from '@causalfusion/rng';
import { checkOrder, editRegion, tokenOrder } from './index';

describe('tokenOrder', () => {
  it('raster, block and dilated orders on a 4 x 4 grid', () => {
    expect(Array.from(tokenOrder('raster', 2, 3))).toEqual([0, 1, 2, 3, 4, 5]);
    expect(Array.from(tokenOrder('block', 4, 4, { blockSize: 2 }))).toEqual([0, 1, 4, 5, 2, 3, 6, 7, 8, 9, 12, 13, 10, 11, 14, 15]);
    expect(Array.from(tokenOrder('dilated', 4, 4, { dilation: 2 }))).toEqual([0, 2, 8, 10, 1, 3, 9, 11, 4, 6, 12, 14, 5, 7, 13, 15]);
  });
  it('handles edge blocks and every order is a permutation', () => {
    const rng = createRng(3);
    for (const name of ['raster', 'random', 'block', 'dilated']) {
      const o = tokenOrder(name, 5, 7, { blockSize: 3, dilation: 3, rng });
      expect(() => checkOrder(o, 35)).not.toThrow();
    }
  });
  it('random order is seeded', () => {
    expect(Array.from(tokenOrder('random', 4, 4, { rng: createRng(1) }))).toEqual(Array.from(tokenOrder('random', 4, 4, { rng: createRng(1) })));
    expect(() => tokenOrder('random', 4, 4)).toThrow(/needs an rng/);
    expect(() => tokenOrder('spiral', 4, 4)).toThrow(/allowed: raster, random, block, dilated/);
  });
  it('checkOrder names the problem', () => {
    expect(() => checkOrder([0, 1, 1], 3)).toThrow(/position 1 appears twice/);
    expect(() => checkOrder([0, 1, 3], 3)).toThrow(/position 3 is out of range 0..2/);
    expect(() => checkOrder([0, 1], 3)).toThrow(/has 2 entries but there are 3 tokens/);
  });
});

describe('editRegion', () => {
  const show = (m: Uint8Array, w: number) => Array.from({ length: m.length / w }, (_, r) => Array.from(m.subarray(r * w, r * w + w)).join(''));
  it('center, top, bottom and outer on a 4 x 4 grid', () => {
    expect(show(editRegion('center', 4, 4), 4)).toEqual(['0000', '0110', '0110', '0000']);
    expect(show(editRegion('outer', 4, 4), 4)).toEqual(['1111', '1001', '1001', '1111']);
    expect(show(editRegion('top', 4, 4), 4)).toEqual(['1111', '1111', '0000', '0000']);
    expect(show(editRegion('bottom', 3, 2), 2)).toEqual(['00', '11', '11']);
    expect(() => editRegion('left', 4, 4)).toThrow(/allowed: center, top, bottom, outer/);
  });
});
