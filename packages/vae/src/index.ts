/**
 * @causalfusion/vae: the KL-VAE image tokenizer of latent-space CausalFusion. A VAE folder (encoder.onnx,
 * decoder.onnx exported from PyTorch, vae.json) run by onnxruntime-node: posterior mean / logvar, seeded
 * samples, decoding, the latent scale factor, latents as transformer tokens, and latent caches of a whole
 * dataset (resumable, with flipped copies) that latent-space training reads instead of re-encoding.
 */
export { VAE_CONFIG_FILE, ENCODER_FILE, DECODER_FILE, VAE_PRESETS, latentSizeOf, parseVaeConfig, readVaeConfig, writeVaeConfig } from './config';
export type { VaeConfig, VaePresetName } from './config';
export { Vae, loadVae, initVaeFolder, checkGraphs, samplePosterior, splitMoments, LOGVAR_MIN, LOGVAR_MAX } from './vae';
export type { VaeOptions, Posterior, GraphGeometry } from './vae';
export { VaeTokenizer, latentsToTokens, tokensToLatents, imagesToNchw, nchwToImages } from './tokens';
export { LatentCache, LatentCacheWriter, openLatentCache, encodeImageFolder, cacheLayout, LATENT_CACHE_MAGIC, LATENT_CACHE_FORMAT } from './cache';
export type { LatentCacheHeader, EncodeFolderOptions } from './cache';
