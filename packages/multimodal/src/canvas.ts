/**
 * Images <-> tokens on a rectangular canvas: p x p patches in raster order, each p*p*channels values scaled from
 * 0..255 to [-1, 1] (the layout of @causalfusion/data's pixel tokenizer, for H != W).
 */
export class CanvasCodec {
  readonly gridH: number;
  readonly gridW: number;
  readonly numTokens: number;
  readonly tokenDim: number;
  readonly pixels: number;

  constructor(
    readonly height: number,
    readonly width: number,
    readonly patchSize: number,
    readonly channels = 1,
  ) {
    if (height % patchSize || width % patchSize) throw new Error(`patch ${patchSize} must divide the canvas ${height}x${width}`);
    this.gridH = height / patchSize;
    this.gridW = width / patchSize;
    this.numTokens = this.gridH * this.gridW;
    this.tokenDim = patchSize * patchSize * channels;
    this.pixels = height * width * channels;
  }

  private offset(y: number, x: number, c: number): number {
    const p = this.patchSize;
    return (Math.floor(y / p) * this.gridW + Math.floor(x / p)) * this.tokenDim + ((y % p) * p + (x % p)) * this.channels + c;
  }

  private count(length: number, what: string): number {
    if (length % this.pixels) throw new RangeError(`${what} has ${length} values, not whole ${this.height}x${this.width}x${this.channels} images`);
    return length / this.pixels;
  }

  /** uint8 HWC images -> tokens [N, L, tokenDim] in [-1, 1]. */
  encode(images: ArrayLike<number>): Float32Array {
    const N = this.count(images.length, 'the image buffer');
    const out = new Float32Array(images.length);
    const { height: H, width: W, channels: ch } = this;
    for (let n = 0; n < N; n++)
      for (let y = 0; y < H; y++)
        for (let x = 0; x < W; x++)
          for (let c = 0; c < ch; c++) out[n * this.pixels + this.offset(y, x, c)] = (images[n * this.pixels + (y * W + x) * ch + c] / 255) * 2 - 1;
    return out;
  }

  /** tokens -> uint8 HWC images (clamped, rounded). */
  decode(tokens: ArrayLike<number>): Uint8Array {
    const N = this.count(tokens.length, 'the token buffer');
    const out = new Uint8Array(tokens.length);
    const { height: H, width: W, channels: ch } = this;
    for (let n = 0; n < N; n++)
      for (let y = 0; y < H; y++)
        for (let x = 0; x < W; x++)
          for (let c = 0; c < ch; c++) {
            const v = ((tokens[n * this.pixels + this.offset(y, x, c)] + 1) / 2) * 255;
            out[n * this.pixels + (y * W + x) * ch + c] = v > 255 ? 255 : v > 0 ? Math.round(v) : 0;
          }
    return out;
  }
}
