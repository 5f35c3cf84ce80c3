/**
 * How a command runs the model (`--runtime`, `--device`, `--threads`, `--workers`, `--backend`): the flags
 * checked before anything starts, and opening a model folder on the chosen runtime. onnxruntime (the
 * default) and tfjs are each loaded only when chosen.
 */
import * as os from 'os';
import { BACKEND_NAMES, type BackendName } from '@causalfusion/backend/names';
import type { Denoiser } from '@causalfusion/sampler';
import type { CausalDiffusionModel } from '@causalfusion/transformer';
import { UsageError } from './errors';
import { boundedInt, LIMITS } from './limits';
import { describeGeometry, type ModelFolder } from './model-folder';

/** Parse --backend before anything starts, so a typo is a usage error rather than a failed start. */
export function parseBackend(name: string | undefined): BackendName | undefined {
  if (name === undefined) return undefined;
  if (!(BACKEND_NAMES as readonly string[]).includes(name)) {
    throw new UsageError(`--backend: unknown backend '${name}'; use one of ${BACKEND_NAMES.join(', ')}`);
  }
  return name as BackendName;
}

/** Start the tfjs backend (quietly: the CLI reports it in its own status line) and load the weights. */
export async function loadWeights(folder: ModelFolder, backend: BackendName | undefined): Promise<{ model: CausalDiffusionModel; backend: string }> {
  // tfjs is loaded only on this path: the ORT path starts without it
  const { initBackend } = await import('@causalfusion/backend');
  const name = await initBackend({ backend, quiet: true });
  const { loadModel, CausalDiffusionModel } = await import('@causalfusion/transformer');
  if (folder.weights) {
    // a PyTorch checkpoint, read in memory (checked against the config already)
    const model = new CausalDiffusionModel(folder.config);
    try {
      model.loadStateDict(folder.weights, folder.dir);
    } catch (e) {
      model.dispose();
      throw new UsageError(`${folder.dir}: cannot load the weights: ${(e as Error).message.split('\n')[0]}`);
    }
    return { model, backend: name };
  }
  try {
    return { model: await loadModel(folder.dir), backend: name };
  } catch (e) {
    // A checkpoint that does not match its config (or a damaged file) is the folder's problem: say which.
    throw new UsageError(`${folder.dir}: cannot load the weights: ${(e as Error).message.split('\n')[0]}`);
  }
}

/** One line saying which model runs where, for stderr. */
export function modelLine(folder: ModelFolder, runtime: string): string {
  const source = folder.isDefault ? 'default model' : 'model';
  return `${source} ${folder.dir} (${folder.meta.dataset}, ${describeGeometry(folder.config)}) on ${runtime}`;
}

export const RUNTIMES = ['ort', 'tfjs'] as const;
export type Runtime = (typeof RUNTIMES)[number];

/** How to run the model: onnxruntime (fast, the default) or tfjs, and their settings. */
export interface RuntimeFlags {
  runtime?: string;
  device?: string;
  threads?: string;
  workers?: string;
  backend?: string;
}

export interface RuntimeSettings {
  runtime: Runtime;
  device: 'cpu' | 'cuda';
  threads: number;
  /** ORT engines the rows are split over (one on the main thread, the others in worker_threads). */
  workers: number;
  backend: BackendName | undefined;
}

/** Check the runtime flags before anything starts. */
export function parseRuntimeFlags(flags: RuntimeFlags): RuntimeSettings {
  const runtime = (flags.runtime ?? 'ort') as Runtime;
  if (!RUNTIMES.includes(runtime)) throw new UsageError(`--runtime: unknown runtime '${flags.runtime}'; use ort (onnxruntime-node, fast) or tfjs`);
  const device = (flags.device ?? 'cpu') as 'cpu' | 'cuda';
  if (device !== 'cpu' && device !== 'cuda') throw new UsageError(`--device: expected cpu or cuda, got '${flags.device}'`);
  if (device === 'cuda' && runtime !== 'ort') throw new UsageError('--device cuda needs --runtime ort (tfjs runs on its backend; see --backend)');
  const count = (value: string | undefined, flag: string, fallback: number): number =>
    value === undefined ? fallback : boundedInt(value, flag, LIMITS.threads);
  const threads = count(flags.threads, '--threads', Math.min(os.availableParallelism(), 4));
  const workers = count(flags.workers, '--workers', device === 'cuda' ? 1 : threads);
  if (flags.workers !== undefined && runtime !== 'ort') throw new UsageError('--workers splits the rows over onnxruntimes; it needs --runtime ort');
  if (flags.backend !== undefined && runtime !== 'tfjs') throw new UsageError('--backend picks the tfjs backend; add --runtime tfjs');
  return { runtime, device, threads, workers, backend: parseBackend(flags.backend) };
}

/** A model ready to sample: the Denoiser, a line saying where it runs, and how to free it. */
export interface OpenedModel {
  denoiser: Denoiser<number>;
  where: string;
  close(): Promise<void>;
}

/** Load a model folder on the chosen runtime. */
export async function openModel(folder: ModelFolder, settings: RuntimeSettings): Promise<OpenedModel> {
  if (settings.runtime === 'tfjs') {
    const loaded = await loadWeights(folder, settings.backend);
    const { TransformerDenoiser } = await import('@causalfusion/transformer');
    return { denoiser: new TransformerDenoiser(loaded.model), where: `tfjs ${loaded.backend}`, close: async () => loaded.model.dispose() };
  }
  const { OrtDenoiser } = await import('@causalfusion/onnx');
  let denoiser;
  try {
    const ortOptions = { device: settings.device, threads: settings.threads, workers: settings.workers };
    denoiser = folder.weights ? await OrtDenoiser.fromWeights(folder.config, folder.weights, ortOptions) : await OrtDenoiser.load(folder.dir, ortOptions);
  } catch (e) {
    throw new UsageError(`${folder.dir}: ${(e as Error).message.split('\n')[0]}`);
  }
  const perWorker = Math.max(1, Math.floor(settings.threads / settings.workers));
  const where =
    settings.workers === 1
      ? `onnxruntime ${settings.device}, ${settings.threads} thread(s)`
      : `onnxruntime ${settings.device}, rows split over ${settings.workers} onnxruntimes x ${perWorker} thread(s)`;
  return { denoiser, where, close: () => denoiser.release() };
}
