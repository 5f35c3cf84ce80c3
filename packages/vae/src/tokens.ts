/**
 * Latents as CausalFusion tokens. A latent [C, h, w] is cut into p x p patches, each one token of p*p*C
 * values, in the transformer's `patchify` layout (the official nchpwq -> nhwpqc, as the pixel tokenizer):
 * token = patch row * grid + patch column, value = (row in patch * p + column in patch) * C + channel.
 * `VaeTokenizer` goes all the way from uint8 images to scaled latent tokens and back through a `Vae`.
 */
import { samplePosterior, type Vae } from './vae';

/** [N, C, s, s] -> [N, L, p*p*C]. */
export function latentsToTokens(latents: Float32Array, channels: number, size: number, patchSize: number): Float32Array {
  return permute(latents, channels, size, patchSize, true);
}

/** [N, L, p*p*C] -> [N, C, s, s]. */
export function tokensToLatents(tokens: ArrayLike<number>, channels: number, size: number, patchSize: number): Float32Array {
  return permute(tokens, channels, size, patchSize, false);
}

function permute(src: ArrayLike<number>, C: number, s: number, p: number, toTokens: boolean): Float32Array {
  if (!Number.isInteger(p) || p < 1 || s % p !== 0) throw new Error(`patch size ${p} does not divide the latent side ${s}`);
  const per = C * s * s;
  if (src.length % per !== 0) throw new Error(`${src.length} values are not a whole number of [${C}, ${s}, ${s}] latents`);
  const grid = s / p;
  const out = new Float32Array(src.length);
  for (let base = 0; base < src.length; base += per)
    for (let c = 0; c < C; c++)
      for (let y = 0; y < s; y++)
        for (let x = 0; x < s; x++) {
          const nchw = base + (c * s + y) * s + x;
          const token = base + (Math.floor(y / p) * grid + Math.floor(x / p)) * p * p * C + ((y % p) * p + (x % p)) * C + c;
          if (toTokens) out[token] = src[nchw];
          else out[nchw] = src[token];
        }
  return out;
}

/** uint8 RGB images NHWC -> NCHW floats in [-1, 1] (torchvision's ToTensor + Normalize(0.5, 0.5)). */
export function imagesToNchw(images: ArrayLike<number>, size: number): Float32Array {
  const per = size * size * 3;
  if (images.length % per !== 0) throw new Error(`${images.length} values are not a whole number of ${size}x${size} RGB images`);
  const out = new Float32Array(images.length);
  for (let base = 0; base < images.length; base += per)
    for (let c = 0; c < 3; c++) for (let i = 0; i < size * size; i++) out[base + c * size * size + i] = (images[base + i * 3 + c] / 255) * 2 - 1;
  return out;
}

/** NCHW floats -> uint8 RGB NHWC: (v + 1) / 2 * 255, clamped and rounded (as MAR writes its samples). */
export function nchwToImages(nchw: ArrayLike<number>, size: number): Uint8Array {
  const per = size * size * 3;
  if (nchw.length % per !== 0) throw new Error(`${nchw.length} values are not a whole number of [3, ${size}, ${size}] images`);
  const out = new Uint8Array(nchw.length);
  for (let base = 0; base < nchw.length; base += per)
    for (let c = 0; c < 3; c++)
      for (let i = 0; i < size * size; i++) {
        const v = ((nchw[base + c * size * size + i] + 1) / 2) * 255;
        out[base + i * 3 + c] = v > 255 ? 255 : v > 0 ? Math.round(v) : 0; // NaN -> 0
      }
  return out;
}

/**
 * The VAE as an image tokenizer for a transformer with patch size p over the latent: tokens are SCALED
 * latents (z * scaleFactor, what the model is trained on), images are uint8 RGB NHWC of the VAE's size.
 */
export class VaeTokenizer {
  readonly patchSize: number;
  readonly grid: number;
  readonly numTokens: number;
  readonly tokenDim: number;
  readonly imageSize: number;
  readonly channels = 3;
  /** Image pixels per token side (p * downsample): what a token covers in the image, for edit masks. */
  readonly pixelsPerToken: number;

  constructor(
    readonly vae: Vae,
    patchSize: number,
  ) {
    if (!Number.isInteger(patchSize) || patchSize < 1 || vae.latentSize % patchSize !== 0) {
      throw new Error(`patch size ${patchSize} does not divide the ${vae.config.name} latent side ${vae.latentSize}`);
    }
    this.patchSize = patchSize;
    this.grid = vae.latentSize / patchSize;
    this.numTokens = this.grid * this.grid;
    this.tokenDim = patchSize * patchSize * vae.latentChannels;
    this.imageSize = vae.imageSize;
    this.pixelsPerToken = patchSize * vae.config.downsample;
  }

  /**
   * uint8 RGB images -> scaled latent tokens. By default the posterior mean (deterministic, what editing
   * wants); `{ seed }` draws a posterior sample instead.
   */
  async encode(images: ArrayLike<number>, options: { seed?: number } = {}): Promise<Float32Array> {
    const posterior = await this.vae.encode(imagesToNchw(images, this.imageSize));
    const z = options.seed === undefined ? posterior.mean : samplePosterior(posterior, options.seed);
    const scale = this.vae.scaleFactor;
    for (let i = 0; i < z.length; i++) z[i] *= scale;
    return latentsToTokens(z, this.vae.latentChannels, this.vae.latentSize, this.patchSize);
  }

  /** Scaled latent tokens [N, L, p*p*C] -> uint8 RGB images NHWC (decoded from z / scaleFactor). */
  async decode(tokens: ArrayLike<number>): Promise<Uint8Array> {
    const per = this.numTokens * this.tokenDim;
    if (tokens.length % per !== 0) {
      throw new Error(
        `decode: ${tokens.length} values are not a whole number of ${this.numTokens} tokens of ${this.tokenDim} values (${this.vae.latentChannels}-channel latents)`,
      );
    }
    const z = tokensToLatents(tokens, this.vae.latentChannels, this.vae.latentSize, this.patchSize);
    const scale = this.vae.scaleFactor;
    for (let i = 0; i < z.length; i++) z[i] /= scale;
    return nchwToImages(await this.vae.decode(z), this.imageSize);
  }
}
