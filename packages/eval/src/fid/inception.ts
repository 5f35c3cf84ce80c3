/**
 * InceptionV3 features from a user-supplied ONNX export of pytorch-fid's network (see the README for the
 * export script). The graph takes float32 [N, 3, 299, 299] already resized and scaled to [-1, 1]; this
 * module does that preprocessing exactly as pytorch-fid (./preprocess.ts) and runs onnxruntime on the CPU.
 * Outputs: `pool3` [N, 2048] (or [N, 2048, 1, 1]) and optionally `logits` [N, classes] for Inception Score.
 */
import * as fs from 'node:fs';
import { createSession, loadOrt, type InferenceSession } from '@causalfusion/ort';
import type { FeatureBatch, FeatureExtractor, RgbImage } from './extractor';
import { preprocessInception } from './preprocess';

export interface InceptionExtractorOptions {
  /** Images per ONNX run (pytorch-fid's default is 50). */
  batchSize?: number;
  /** Output holding the pool3 features; default 'pool3' if the graph has it, else its first output. */
  featuresOutput?: string;
  /** Output holding class logits; default 'logits' if the graph has it (Inception Score is skipped otherwise). */
  logitsOutput?: string;
  /** onnxruntime CPU threads (default: onnxruntime's choice, all cores). */
  intraOpNumThreads?: number;
}

const INPUT_SIZE = 299;

export async function createInceptionExtractor(modelPath: string, options: InceptionExtractorOptions = {}): Promise<FeatureExtractor> {
  if (!fs.existsSync(modelPath)) {
    throw new Error(`Inception ONNX file ${modelPath} not found; export it from pytorch-fid as described in @causalfusion/eval's README`);
  }
  const ort = loadOrt();
  let session: InferenceSession;
  try {
    session = await createSession(modelPath, { threads: options.intraOpNumThreads });
  } catch (err) {
    throw new Error(`cannot load ${modelPath} with onnxruntime: ${(err as Error).message}`);
  }
  const inputName = session.inputNames[0];
  const outputs = session.outputNames;
  const featuresName = options.featuresOutput ?? (outputs.includes('pool3') ? 'pool3' : outputs[0]);
  const logitsName = options.logitsOutput ?? (outputs.includes('logits') ? 'logits' : undefined);
  for (const name of [featuresName, logitsName]) {
    if (name !== undefined && !outputs.includes(name)) throw new Error(`${modelPath} has no output '${name}' (outputs: ${outputs.join(', ')})`);
  }
  const batchSize = options.batchSize ?? 50;

  const run = async (images: readonly RgbImage[]): Promise<FeatureBatch> => {
    const n = images.length;
    const plane = 3 * INPUT_SIZE * INPUT_SIZE;
    const input = new Float32Array(n * plane);
    images.forEach((image, i) => preprocessInception(image, INPUT_SIZE, input, i * plane));
    const result = await session.run({ [inputName]: new ort.Tensor('float32', input, [n, 3, INPUT_SIZE, INPUT_SIZE]) });
    const features = result[featuresName].data as Float32Array;
    if (features.length % n !== 0) throw new Error(`output '${featuresName}' has ${features.length} values for ${n} images`);
    if (logitsName === undefined) return { features };
    const logits = result[logitsName].data as Float32Array;
    return { features, logits, numClasses: logits.length / n };
  };

  // One probe image tells the feature dimension (the graph's output shapes may be symbolic).
  const probe = await run([{ width: 1, height: 1, data: new Uint8Array(3) }]);
  const dim = probe.features.length;

  return {
    name: 'inception-v3-pool3',
    dim,
    batchSize,
    async extract(images) {
      if (images.length === 0) return { features: new Float32Array(0), ...(logitsName ? { logits: new Float32Array(0), numClasses: probe.numClasses } : {}) };
      return run(images);
    },
    async dispose() {
      await session.release();
    },
  };
}
