import { pixelTokenizer } from './pixel-tokenizer';

describe('pixelTokenizer', () => {
  it('puts pixels where the transformer patchify puts them (nchpwq -> nhwpqc)', () => {
    // 4x4 RGB-like image with 2 channels, patch 2: 4 tokens of 8 values
    const tok = pixelTokenizer({ imageSize: 4, channels: 2, patchSize: 2 });
    expect([tok.numTokens, tok.tokenDim]).toEqual([4, 8]);
    const img = new Uint8Array(4 * 4 * 2);
    // pixel (y=1, x=2), channel 1 -> token 1 (patch row 0, col 1), value ((1%2)*2 + 2%2)*2 + 1 = 5
    img[(1 * 4 + 2) * 2 + 1] = 255;
    // pixel (y=3, x=0), channel 0 -> token 2, value ((3%2)*2 + 0)*2 + 0 = 4
    img[(3 * 4 + 0) * 2 + 0] = 255;
    const tokens = tok.encode(img);
    const ones = [...tokens.keys()].filter((i) => tokens[i] === 1);
    expect(ones).toEqual([1 * 8 + 5, 2 * 8 + 4]);
    expect(tokens.filter((v) => v === -1).length).toBe(tokens.length - 2);
  });

  it('round-trips every gray level and clamps out-of-range tokens', () => {
    const tok = pixelTokenizer({ imageSize: 28, channels: 1, patchSize: 7 });
    expect([tok.numTokens, tok.tokenDim]).toEqual([16, 49]);
    const imgs = new Uint8Array(2 * 784);
    for (let i = 0; i < imgs.length; i++) imgs[i] = (i * 37) % 256;
    const tokens = tok.encode(imgs);
    expect(Math.min(...tokens)).toBe(-1);
    expect(Math.max(...tokens)).toBe(1);
    expect(tok.decode(tokens)).toEqual(imgs);
    const wild = new Float32Array(784).fill(3);
    wild[0] = -5;
    wild[1] = NaN;
    const out = tok.decode(wild);
    expect([out[0], out[1], out[2]]).toEqual([0, 0, 255]);
  });

  it('toNchw gives the channel-first layout in [-1, 1]', () => {
    const tok = pixelTokenizer({ imageSize: 2, channels: 3, patchSize: 1 });
    const img = Uint8Array.from([0, 255, 0, 255, 0, 0, 0, 0, 255, 255, 255, 255]);
    expect(Array.from(tok.toNchw(img))).toEqual([-1, 1, -1, 1, 1, -1, -1, 1, -1, -1, 1, 1]);
  });

  it('rejects bad geometry and buffers of the wrong size', () => {
    expect(() => pixelTokenizer({ imageSize: 28, channels: 1, patchSize: 5 })).toThrow(/patchSize 5 does not divide imageSize 28/);
    expect(() => pixelTokenizer({ imageSize: 0, channels: 1, patchSize: 1 })).toThrow(/imageSize must be a positive integer/);
    const tok = pixelTokenizer({ imageSize: 28, channels: 1, patchSize: 7 });
    expect(() => tok.encode(new Uint8Array(100))).toThrow(/100 values, not a multiple of 784/);
  });
});
