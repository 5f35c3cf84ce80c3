/**
 * @causalfusion/ort: the one place that loads onnxruntime-node and sets up its sessions, for every package
 * that runs ONNX graphs (@causalfusion/onnx, @causalfusion/vae, @causalfusion/eval): loading, session
 * options (device, threads, no spin-waiting), and the CUDA check that says what is missing instead of a
 * native error line.
 *
 * ```ts
 * const session = await createSession(graphBytes, { device: 'cpu', threads: 2 });
 * const out = await session.run({ x: new (loadOrt().Tensor)('float32', data, dims) });
 * ```
 */
import * as fs from 'fs';
import * as path from 'path';

export type Ort = typeof import('onnxruntime-node');
export type InferenceSession = import('onnxruntime-node').InferenceSession;
export type OrtTensor = import('onnxruntime-node').Tensor;
export type SessionOptions = import('onnxruntime-node').InferenceSession.SessionOptions;

export type Device = 'cpu' | 'cuda';

/** onnxruntime-node, loaded on first use (building and exporting graphs never touches native code). */
export function loadOrt(): Ort {
  // require rather than import(): a CommonJS consumer under a test runner's VM may not support dynamic import
  return require('onnxruntime-node') as Ort;
}

export interface SessionSettings {
  /** Execution provider (default cpu). */
  device?: Device;
  /** Intra-op threads (default: ORT's choice, one per core). */
  threads?: number;
  /**
   * `inference` (default): no spin-waiting, since between calls the caller's JavaScript needs the cores that
   * idle ORT threads would spin on. `training`: one large graph per step, run sequentially with one inter-op thread.
   */
  purpose?: 'inference' | 'training';
}

/** The session options of `settings` (all graph optimizations). */
export function sessionOptions(settings: SessionSettings = {}): SessionOptions {
  const { device = 'cpu', threads, purpose = 'inference' } = settings;
  if (threads !== undefined && !(Number.isInteger(threads) && threads >= 1)) throw new Error(`threads must be a positive integer, got ${threads}`);
  if (purpose === 'training') {
    return {
      executionProviders: [device],
      graphOptimizationLevel: 'all',
      executionMode: 'sequential',
      ...(threads ? { intraOpNumThreads: threads, interOpNumThreads: 1 } : {}),
    };
  }
  return {
    executionProviders: [device],
    graphOptimizationLevel: 'all',
    ...(threads ? { intraOpNumThreads: threads } : {}),
    extra: { session: { intra_op: { allow_spinning: '0' } } },
  };
}

const CPU_HINT = "Use --device cpu (device: 'cpu') to run on the CPU.";

/**
 * The CUDA provider is a shared library beside onnxruntime-node's binding; without it ORT fails deep
 * inside and prints a native error line. Look first, and say what is missing.
 */
export function checkCudaProvider(): void {
  let bindingDir: string;
  try {
    const main = require.resolve('onnxruntime-node');
    bindingDir = path.join(path.dirname(main), '..', 'bin', 'napi-v6', process.platform, process.arch);
  } catch {
    return; // an unusual install: let ORT itself report
  }
  const missing = ['libonnxruntime_providers_shared.so', 'libonnxruntime_providers_cuda.so'].filter((f) => !fs.existsSync(path.join(bindingDir, f)));
  if (process.platform === 'linux' && missing.length) {
    throw new Error(
      `this onnxruntime-node has no CUDA execution provider (${missing.join(' and ')} missing in ${bindingDir}; its install script ` +
        `downloads them, and this workspace does not run it). ${CPU_HINT}`,
    );
  }
}

/**
 * A session of the graph in `source` (a file or the serialized model). With `device: 'cuda'` the provider
 * is checked first and a failure says what CUDA needs; other failures are thrown as ORT reports them.
 */
export async function createSession(source: string | Uint8Array, settings: SessionSettings = {}): Promise<InferenceSession> {
  const ort = loadOrt();
  const options = sessionOptions(settings);
  if (settings.device === 'cuda') checkCudaProvider();
  try {
    return typeof source === 'string' ? await ort.InferenceSession.create(source, options) : await ort.InferenceSession.create(source, options);
  } catch (err) {
    if (settings.device !== 'cuda') throw err;
    throw new Error(
      `onnxruntime-node ${ort.env.versions.node ?? ''} cannot use CUDA here (${(err as Error).message.split('\n')[0]}). Its CUDA execution ` +
        `provider needs libonnxruntime_providers_shared.so and libonnxruntime_providers_cuda.so beside its binding (onnxruntime-node's ` +
        `install script downloads them; this workspace does not run it), plus CUDA 12 and cuDNN 9 on the machine. ${CPU_HINT}`,
    );
  }
}

/** Integers as the int64 data of an ORT tensor. */
export function toInt64(values: ArrayLike<number>): BigInt64Array {
  return BigInt64Array.from(Array.from(values), (v) => BigInt(v));
}
