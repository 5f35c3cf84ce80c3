/**
 * A KL-VAE (the official `AutoencoderKL` of MAR / latent diffusion) run by onnxruntime-node from the
 * encoder and decoder a user exports from PyTorch. The encoder graph returns the posterior's moments
 * `quant_conv(encoder(x))` [N, 2C, h, w]; mean = moments[:, :C], logvar = clamp(moments[:, C:], -30, 20),
 * a sample is mean + exp(0.5 logvar) * eps (`DiagonalGaussianDistribution`). The decoder takes an
 * UNSCALED latent [N, C, h, w]: callers divide the diffusion model's latents by the scale factor first.
 * Everything is NCHW float32 with images in [-1, 1].
 */
import * as fs from 'fs';
import * as path from 'path';
import { createRng, type Rng } from '@causalfusion/rng';
import { createSession, loadOrt, sessionOptions, type InferenceSession, type Ort } from '@causalfusion/ort';
import { copyFileAtomic, makeDirs } from '@causalfusion/safetensors';
import { DECODER_FILE, ENCODER_FILE, latentSizeOf, readVaeConfig, writeVaeConfig, type VaeConfig } from './config';

type Dim = number | string;

export interface VaeOptions {
  /** ORT intra-op threads of each session (default: ORT's choice, one per core). */
  threads?: number;
  /** Images per encoder / decoder call (default 8): bounds the memory of big VAEs. */
  batchSize?: number;
}

/** The diagonal Gaussian posterior of N images: mean and clamped logvar, [N, C, h, w] each. */
export interface Posterior {
  mean: Float32Array;
  logvar: Float32Array;
  shape: [number, number, number, number];
}

/** The logvar clamp of `DiagonalGaussianDistribution`. */
export const LOGVAR_MIN = -30;
export const LOGVAR_MAX = 20;

/**
 * z = mean + exp(0.5 logvar) * eps. `noise` is a seed, an Rng (eps drawn with `fillNormal`) or eps itself.
 * float32 arithmetic as torch's: exp of the float32 half-logvar, then a float32 multiply-add.
 */
export function samplePosterior(p: Pick<Posterior, 'mean' | 'logvar'>, noise: number | Rng | Float32Array): Float32Array {
  const n = p.mean.length;
  if (p.logvar.length !== n) throw new Error(`samplePosterior: mean has ${n} values but logvar ${p.logvar.length}`);
  let eps: ArrayLike<number>;
  if (noise instanceof Float32Array) {
    if (noise.length !== n) throw new Error(`samplePosterior: eps has ${noise.length} values, the posterior ${n}`);
    eps = noise;
  } else eps = (typeof noise === 'number' ? createRng(noise) : noise).fillNormal(new Float32Array(n));
  const z = new Float32Array(n);
  for (let i = 0; i < n; i++) z[i] = p.mean[i] + Math.fround(Math.exp(Math.fround(0.5 * p.logvar[i]))) * eps[i];
  return z;
}

/** Split the moments [N, 2C, h, w] into mean and clamped logvar. */
export function splitMoments(moments: Float32Array, N: number, C: number, h: number, w: number): Posterior {
  const plane = C * h * w;
  if (moments.length !== N * 2 * plane) throw new Error(`moments have ${moments.length} values, expected ${N}x${2 * C}x${h}x${w}`);
  const mean = new Float32Array(N * plane);
  const logvar = new Float32Array(N * plane);
  for (let n = 0; n < N; n++) {
    mean.set(moments.subarray(2 * n * plane, (2 * n + 1) * plane), n * plane);
    const lv = moments.subarray((2 * n + 1) * plane, (2 * n + 2) * plane);
    for (let i = 0; i < plane; i++) logvar[n * plane + i] = Math.min(LOGVAR_MAX, Math.max(LOGVAR_MIN, lv[i]));
  }
  return { mean, logvar, shape: [N, C, h, w] };
}

function dims(meta: InferenceSession['inputMetadata'][number], file: string, what: string): Dim[] {
  if (!meta.isTensor || meta.type !== 'float32') {
    throw new Error(`${file}: its ${what} "${meta.name}" is ${meta.isTensor ? meta.type : 'not a tensor'}; a VAE graph takes and returns float32 tensors`);
  }
  return [...meta.shape];
}

const show = (d: Dim[]) => `[${d.map(String).join(', ')}]`;
const fixed = (d: Dim): d is number => typeof d === 'number' && d > 0;

/**
 * What the graphs say about the geometry, checked: the encoder takes [N, 3, H, W] images and returns
 * [N, 2C, h, w] moments; the decoder takes [N, C, h, w] latents and returns [N, 3, H, W] images.
 * Spatial sizes may be symbolic; the ones that are fixed must agree with `expected` (when given).
 */
export interface GraphGeometry {
  latentChannels: number;
  /** Fixed image side and latent side, or null where the graphs leave them symbolic. */
  imageSize: number | null;
  latentSize: number | null;
  /** The batch dimension when the export fixed it (then calls are made in chunks of it), else null. */
  encoderBatch: number | null;
  decoderBatch: number | null;
  /** The encoder's output that holds the moments. */
  momentsName: string;
}

export function checkGraphs(encoder: InferenceSession, decoder: InferenceSession, files: { encoder: string; decoder: string }): GraphGeometry {
  const [encIn] = encoder.inputMetadata;
  if (encoder.inputMetadata.length !== 1) {
    throw new Error(`${files.encoder}: an encoder has one input (the image), this graph has ${encoder.inputMetadata.length}: ${encoder.inputNames.join(', ')}`);
  }
  const x = dims(encIn, files.encoder, 'input');
  if (x.length !== 4 || (fixed(x[1]) && x[1] !== 3)) {
    const hint = x.length === 4 && fixed(x[1]) ? ` (${x[1]} channels: is it the decoder, or a latent-space graph?)` : '';
    throw new Error(`${files.encoder}: the input "${encIn.name}" is ${show(x)}, not an image [N, 3, H, W]${hint}`);
  }
  // the official export names the moments output "moments"; otherwise the first output is taken
  const momentsMeta = encoder.outputMetadata.find((m) => m.name === 'moments') ?? encoder.outputMetadata[0];
  const m = dims(momentsMeta, files.encoder, 'output');
  if (m.length !== 4 || !fixed(m[1]) || m[1] % 2 !== 0) {
    throw new Error(
      `${files.encoder}: the output "${momentsMeta.name}" is ${show(m)}; expected the posterior moments [N, 2C, h, w] (mean and logvar, C latent channels)`,
    );
  }
  const C = m[1] / 2;
  if (decoder.inputMetadata.length !== 1) {
    throw new Error(`${files.decoder}: a decoder has one input (the latent), this graph has ${decoder.inputMetadata.length}: ${decoder.inputNames.join(', ')}`);
  }
  const [decIn] = decoder.inputMetadata;
  const z = dims(decIn, files.decoder, 'input');
  if (z.length !== 4 || (fixed(z[1]) && z[1] !== C)) {
    throw new Error(
      `${files.decoder}: the input "${decIn.name}" is ${show(z)}; the encoder makes ${C}-channel latents, so the decoder must take [N, ${C}, h, w]`,
    );
  }
  const [decOut] = decoder.outputMetadata;
  const y = dims(decOut, files.decoder, 'output');
  if (y.length !== 4 || (fixed(y[1]) && y[1] !== 3)) throw new Error(`${files.decoder}: the output "${decOut.name}" is ${show(y)}, not an image [N, 3, H, W]`);
  const side = (a: Dim[], what: string, file: string): number | null => {
    if (fixed(a[2]) && fixed(a[3]) && a[2] !== a[3]) throw new Error(`${file}: the ${what} ${show(a)} is not square`);
    return fixed(a[2]) ? a[2] : fixed(a[3]) ? a[3] : null;
  };
  const imageSize = side(x, 'input', files.encoder) ?? side(y, 'output', files.decoder);
  const latentSize = side(m, 'output', files.encoder) ?? side(z, 'input', files.decoder);
  return {
    latentChannels: C,
    imageSize,
    latentSize,
    encoderBatch: fixed(x[0]) ? x[0] : null,
    decoderBatch: fixed(z[0]) ? z[0] : null,
    momentsName: momentsMeta.name,
  };
}

async function openSession(file: string, options: VaeOptions, role: string): Promise<InferenceSession> {
  if (!fs.existsSync(file))
    throw new Error(
      `${file} is missing: a VAE folder holds ${ENCODER_FILE} and ${DECODER_FILE} (the ${role} exported to ONNX; see @causalfusion/vae's README)`,
    );
  sessionOptions({ threads: options.threads }); // a bad thread count is the caller's error, not the file's
  try {
    return await createSession(file, { device: 'cpu', threads: options.threads });
  } catch (e) {
    throw new Error(`${file}: onnxruntime cannot load it as the VAE ${role} (${(e as Error).message.split('\n')[0]})`);
  }
}

export class Vae {
  readonly latentSize: number;
  readonly batchSize: number;

  private constructor(
    private readonly ort: Ort,
    private readonly encoder: InferenceSession,
    private readonly decoder: InferenceSession,
    readonly config: VaeConfig,
    readonly geometry: GraphGeometry,
    readonly dir: string,
    batchSize: number,
  ) {
    this.latentSize = latentSizeOf(config);
    this.batchSize = batchSize;
  }

  /** Load a VAE folder (encoder.onnx, decoder.onnx, vae.json); the graphs are checked against vae.json. */
  static async load(dir: string, options: VaeOptions = {}): Promise<Vae> {
    const config = readVaeConfig(dir);
    const batchSize = options.batchSize ?? 8;
    if (!Number.isInteger(batchSize) || batchSize < 1) throw new Error(`batchSize must be a positive integer, got ${batchSize}`);
    const ort = loadOrt();
    const files = { encoder: path.join(dir, ENCODER_FILE), decoder: path.join(dir, DECODER_FILE) };
    const encoder = await openSession(files.encoder, options, 'encoder');
    let decoder: InferenceSession | undefined;
    try {
      decoder = await openSession(files.decoder, options, 'decoder');
      const g = checkGraphs(encoder, decoder, files);
      const latentSize = latentSizeOf(config);
      const problems: string[] = [];
      if (g.latentChannels !== config.latentChannels) problems.push(`${g.latentChannels} latent channels (vae.json: ${config.latentChannels})`);
      if (g.imageSize !== null && g.imageSize !== config.imageSize) problems.push(`${g.imageSize}-pixel images (vae.json: ${config.imageSize})`);
      if (g.latentSize !== null && g.latentSize !== latentSize)
        problems.push(`${g.latentSize}-wide latents (vae.json: ${latentSize} = ${config.imageSize} / ${config.downsample})`);
      if (problems.length) throw new Error(`${dir}: the ONNX graphs do not match vae.json: they have ${problems.join(', ')}`);
      return new Vae(ort, encoder, decoder, config, g, dir, batchSize);
    } catch (e) {
      await encoder.release();
      await decoder?.release();
      throw e;
    }
  }

  get latentChannels(): number {
    return this.config.latentChannels;
  }

  get imageSize(): number {
    return this.config.imageSize;
  }

  get scaleFactor(): number {
    return this.config.scaleFactor;
  }

  /** Values per latent (C * h * w). */
  get latentLength(): number {
    return this.config.latentChannels * this.latentSize * this.latentSize;
  }

  /** Run `session` over N items in chunks (of the fixed batch when the export fixed one, padded with zeros). */
  private async chunked(
    session: InferenceSession,
    input: Float32Array,
    inShape: [number, number, number],
    outPer: number,
    N: number,
    fixedBatch: number | null,
    outputName: string,
  ): Promise<Float32Array> {
    const inPer = inShape[0] * inShape[1] * inShape[2];
    const out = new Float32Array(N * outPer);
    const step = fixedBatch ?? this.batchSize;
    for (let from = 0; from < N; from += step) {
      const count = Math.min(step, N - from);
      const rows = fixedBatch ?? count;
      const feed = new Float32Array(rows * inPer);
      feed.set(input.subarray(from * inPer, (from + count) * inPer));
      const tensor = new this.ort.Tensor('float32', feed, [rows, ...inShape]);
      const result = await session.run({ [session.inputNames[0]]: tensor });
      const data = result[outputName].data as Float32Array;
      if (data.length !== rows * outPer) throw new Error(`the VAE graph returned ${data.length} values for ${rows} item(s), expected ${rows * outPer}`);
      out.set(data.subarray(0, count * outPer), from * outPer);
      for (const t of Object.values(result)) t.dispose();
    }
    return out;
  }

  /** The posterior of images NCHW [N, 3, size, size] in [-1, 1] (size = vae.json's imageSize). */
  async encode(images: Float32Array): Promise<Posterior> {
    const size = this.config.imageSize;
    const per = 3 * size * size;
    if (images.length === 0 || images.length % per !== 0) {
      throw new Error(`encode: ${images.length} values are not a whole number of ${size}x${size} RGB images (${per} values each, NCHW in [-1, 1])`);
    }
    const N = images.length / per;
    const ch = this.config.latentChannels;
    const h = this.latentSize;
    const moments = await this.chunked(this.encoder, images, [3, size, size], 2 * ch * h * h, N, this.geometry.encoderBatch, this.geometry.momentsName);
    return splitMoments(moments, N, ch, h, h);
  }

  /**
   * Images NCHW [N, 3, S, S] (about [-1, 1]) of UNSCALED latents [N, C, h, w]. `shape` (when the caller
   * knows it) is checked, so a latent with the wrong channel count is an Error rather than garbage.
   */
  async decode(latents: Float32Array, shape?: readonly number[]): Promise<Float32Array> {
    const C = this.config.latentChannels;
    const h = this.latentSize;
    if (shape && (shape.length !== 4 || shape[1] !== C || shape[2] !== h || shape[3] !== h)) {
      throw new Error(`decode: latents of shape [${shape.join(', ')}] do not fit this VAE (${this.config.name}): it decodes [N, ${C}, ${h}, ${h}]`);
    }
    const per = C * h * h;
    if (latents.length === 0 || latents.length % per !== 0) {
      throw new Error(`decode: ${latents.length} values are not a whole number of [${C}, ${h}, ${h}] latents (${this.config.name} has ${C} latent channels)`);
    }
    const S = this.config.imageSize;
    return this.chunked(this.decoder, latents, [C, h, h], 3 * S * S, latents.length / per, this.geometry.decoderBatch, this.decoder.outputNames[0]);
  }

  async release(): Promise<void> {
    await this.encoder.release();
    await this.decoder.release();
  }
}

/** `Vae.load(dir, options)`. */
export function loadVae(dir: string, options: VaeOptions = {}): Promise<Vae> {
  return Vae.load(dir, options);
}

/**
 * Make a VAE folder from an exported encoder and decoder: copy them in and write vae.json with the
 * geometry read off the graphs (`imageSize` and `downsample` are needed only when the export left the
 * spatial sizes symbolic). Returns the written config.
 */
export async function initVaeFolder(options: {
  dir: string;
  encoder: string;
  decoder: string;
  name: string;
  scaleFactor: number;
  imageSize?: number;
  downsample?: number;
}): Promise<VaeConfig> {
  const encoder = await openSession(options.encoder, {}, 'encoder');
  let decoder: InferenceSession | undefined;
  let g: GraphGeometry;
  try {
    decoder = await openSession(options.decoder, {}, 'decoder');
    g = checkGraphs(encoder, decoder, options);
  } finally {
    await encoder.release();
    await decoder?.release();
  }
  const imageSize = options.imageSize ?? g.imageSize;
  if (imageSize === null) throw new Error(`${options.encoder}: the graph's image size is symbolic; give the image size the VAE was trained for`);
  if (g.imageSize !== null && g.imageSize !== imageSize) throw new Error(`${options.encoder}: the graph takes ${g.imageSize}-pixel images, not ${imageSize}`);
  let downsample: number;
  if (g.latentSize !== null) {
    if (imageSize % g.latentSize !== 0) throw new Error(`the latent side ${g.latentSize} does not divide the image side ${imageSize}`);
    downsample = imageSize / g.latentSize;
  } else if (options.downsample !== undefined) downsample = options.downsample;
  else throw new Error(`${options.encoder}: the graph's latent size is symbolic; give the downsampling factor (16 for MAR's VAE, 8 for SD's)`);
  makeDirs(options.dir);
  for (const [src, name] of [
    [options.encoder, ENCODER_FILE],
    [options.decoder, DECODER_FILE],
  ] as const) {
    const dest = path.join(options.dir, name);
    if (path.resolve(src) !== path.resolve(dest)) copyFileAtomic(src, dest);
  }
  return writeVaeConfig(options.dir, { name: options.name, scaleFactor: options.scaleFactor, latentChannels: g.latentChannels, downsample, imageSize });
}
