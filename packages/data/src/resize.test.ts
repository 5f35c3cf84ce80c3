import { loadMnist } from './mnist';
import { resizeImages } from './resize';

describe('resizeImages', () => {
  it('shrinking by 2 is the mean of each 2x2 block; a constant image stays constant both ways', () => {
    const img = Uint8Array.from({ length: 16 }, (_, i) => i * 10);
    const small = resizeImages(img, 4, 2);
    const block = (r: number, c: number) => (img[r * 8 + c * 2] + img[r * 8 + c * 2 + 1] + img[r * 8 + 4 + c * 2] + img[r * 8 + 4 + c * 2 + 1]) / 4;
    expect(Array.from(small)).toEqual([block(0, 0), block(0, 1), block(1, 0), block(1, 1)].map(Math.round));
    const flat = new Uint8Array(2 * 28 * 28 * 3).fill(77);
    expect(resizeImages(flat, 28, 16, 3).every((v) => v === 77)).toBe(true);
    expect(resizeImages(resizeImages(flat, 28, 16, 3), 16, 28, 3).every((v) => v === 77)).toBe(true);
  });
  it('keeps the ink of MNIST digits (area filter) and keeps channels apart', () => {
    const { images } = loadMnist('test');
    const digit = images.subarray(0, 784);
    const small = resizeImages(digit, 28, 16);
    const ink = (a: Uint8Array, n: number) => a.reduce((s, v) => s + v, 0) / (n * n);
    expect(Math.abs(ink(small, 16) - ink(digit, 28))).toBeLessThan(1);
    const rgb = new Uint8Array(28 * 28 * 3);
    for (let i = 0; i < 784; i++) rgb[i * 3 + 1] = digit[i];
    const rgbSmall = resizeImages(rgb, 28, 16, 3);
    for (let i = 0; i < 256; i++) expect([rgbSmall[i * 3], rgbSmall[i * 3 + 1], rgbSmall[i * 3 + 2]]).toEqual([0, small[i], 0]);
  });
  it('rejects a buffer that is not whole images', () => {
    expect(() => resizeImages(new Uint8Array(10), 3, 2)).toThrow(/not a whole number of 3x3x1 images/);
    expect(() => resizeImages(new Uint8Array(9), 3, 0)).toThrow(/to must be a positive integer/);
  });
});
