/**
 * Images <-> tokens for a model (what `sample`, `edit` and `info` put around the transformer): the pixel
 * tokenizer, a VAE (loaded on first use, through onnxruntime), or none (a latent-space model read without
 * its VAE: the geometry, and an error if images are asked for).
 */
import { derived, type ModelConfig, type PixelMeta, type VaeMeta } from '@causalfusion/config';
import { PixelTokenizer } from '@causalfusion/data';
import { loadVae, VaeTokenizer, type Vae } from '@causalfusion/vae';
import { UsageError } from './errors';

/** Images are uint8 NHWC of `imageSize` x `imageSize` x `channels`. */
export interface ImageCodec {
  /** 'none': a latent-space model read without its VAE (info, export): encode and decode refuse. */
  readonly kind: 'pixel' | 'vae' | 'none';
  readonly imageSize: number;
  readonly channels: number;
  readonly grid: number;
  readonly numTokens: number;
  /** Image pixels along a token's side (the patch, times the VAE's downsampling): for edit masks. */
  readonly pixelsPerToken: number;
  encode(images: Uint8Array): Promise<Float32Array>;
  decode(tokens: ArrayLike<number>): Promise<Uint8Array>;
  close(): Promise<void>;
}

export function pixelCodec(t: PixelMeta): ImageCodec {
  const tok = new PixelTokenizer({ imageSize: t.imageSize, channels: t.channels, patchSize: t.patchSize });
  return {
    kind: 'pixel',
    imageSize: t.imageSize,
    channels: t.channels,
    grid: tok.grid,
    numTokens: tok.numTokens,
    pixelsPerToken: t.patchSize,
    encode: async (images) => tok.encode(images),
    decode: async (tokens) => tok.decode(tokens),
    close: async () => {},
  };
}

/** The codec of a model read without its VAE: the geometry, and a clear error if images are asked for. */
export function noCodec(where: string, config: ModelConfig): ImageCodec {
  const d = derived(config);
  const refuse = async (): Promise<never> => {
    throw new UsageError(`${where}: the model's VAE is not known; give it with --tokenizer vae:DIR`);
  };
  return {
    kind: 'none',
    imageSize: config.inputSize,
    channels: config.latentChannels,
    grid: d.grid,
    numTokens: d.numTokens,
    pixelsPerToken: config.patchSize,
    encode: refuse,
    decode: refuse,
    close: async () => {},
  };
}

/** The VAE codec; `threads` is onnxruntime's, as the model's. */
export function vaeCodec(dir: string, t: VaeMeta, threads?: number): ImageCodec {
  let vae: Promise<Vae> | null = null;
  const tokenizer = async () => {
    vae ??= loadVae(dir, { threads }).catch((e) => {
      throw new UsageError(`the VAE ${dir}: ${(e as Error).message.split('\n')[0]}`);
    });
    return new VaeTokenizer(await vae, t.patchSize);
  };
  const grid = t.latentSize / t.patchSize;
  return {
    kind: 'vae',
    imageSize: t.imageSize,
    channels: 3,
    grid,
    numTokens: grid * grid,
    pixelsPerToken: t.imageSize / grid,
    encode: async (images) => (await tokenizer()).encode(images),
    decode: async (tokens) => (await tokenizer()).decode(tokens),
    close: async () => {
      if (vae) await (await vae).release();
      vae = null;
    },
  };
}
