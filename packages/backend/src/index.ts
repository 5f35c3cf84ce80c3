/**
 * @causalfusion/backend: picks the compute backend of @tensorflow/tfjs once per process.
 *
 * Order of preference:
 *   1. `tensorflow` from `@tensorflow/tfjs-node-gpu`, then `@tensorflow/tfjs-node` (native TensorFlow).
 *      They are optional: not dependencies of this package, loaded with `require` inside try/catch.
 *   2. `wasm` from `@tensorflow/tfjs-backend-wasm` (XNNPACK, SIMD where the runtime has it), its .wasm
 *      binaries read from node_modules, never fetched.
 *   3. `cpu`, the pure-JS backend (about 100x slower than wasm): only if wasm fails to start, or asked for.
 *
 * Every package that computes with tfjs imports `tf` from here, so all of them share one tfjs instance
 * and one backend.
 */
import * as path from 'path';
import * as tf from '@tensorflow/tfjs';

export { tf };

import { BACKEND_NAMES, type BackendName } from './names';

export { BACKEND_NAMES, type BackendName };

export interface InitBackendOptions {
  /**
   * Use this backend and no other (an Error if it cannot start). Default: the fastest one installed,
   * or the `CAUSALFUSION_BACKEND` environment variable when it is set.
   */
  backend?: BackendName;
  /** Do not print the one-line notice on stderr. */
  quiet?: boolean;
}

/** What was chosen, kept so later calls return at once (and print nothing). */
let chosen: { name: BackendName; requested: BackendName | undefined } | null = null;
/** The call in progress, so concurrent first calls share one initialisation. */
let pending: Promise<string> | null = null;

const NATIVE_PACKAGES = ['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node'] as const;

function checkName(name: string, where: string): BackendName {
  if ((BACKEND_NAMES as readonly string[]).includes(name)) return name as BackendName;
  throw new Error(
    `Unknown tfjs backend "${name}" (${where}): use one of ${BACKEND_NAMES.map((b) => `'${b}'`).join(', ')}, ` +
      'or leave it out to pick the fastest one installed.',
  );
}

/**
 * Loads the first native binding that is installed and registers `tensorflow` with OUR tfjs-core.
 * Returns the package name, or null with the reason it could not be used.
 */
function loadNative(): { pkg: string | null; why: string } {
  let why = 'install @tensorflow/tfjs-node for the native backend';
  for (const pkg of NATIVE_PACKAGES) {
    try {
      // A variable name keeps bundlers and tsc from treating the optional package as a dependency.
      const optional: string = pkg;
      require(optional);
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (code !== 'MODULE_NOT_FOUND') why = `${pkg} is installed but failed to load: ${(err as Error).message.split('\n')[0]}`;
      continue;
    }
    // The binding registers into the tfjs-core it resolves; a different copy (another version) is useless here.
    if (tf.findBackendFactory('tensorflow') != null) return { pkg, why: '' };
    why = `${pkg} is installed but registered with another copy of @tensorflow/tfjs-core; install the version matching @tensorflow/tfjs@${tf.version.tfjs}`;
  }
  return { pkg: null, why };
}

/** Registers the wasm backend and points it at the .wasm files inside node_modules (no network). */
function registerWasm(): void {
  const wasm = require('@tensorflow/tfjs-backend-wasm') as typeof import('@tensorflow/tfjs-backend-wasm');
  if (tf.findBackendFactory('wasm') == null) {
    throw new Error('@tensorflow/tfjs-backend-wasm registered with another copy of @tensorflow/tfjs-core');
  }
  const binary = require.resolve('@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm-simd.wasm');
  // setWasmPaths throws once the backend has started; it only needs to be set before the first start.
  if (!wasmPathsSet) {
    wasm.setWasmPaths(path.dirname(binary) + path.sep);
    wasmPathsSet = true;
  }
}
let wasmPathsSet = false;

async function start(name: BackendName): Promise<boolean> {
  try {
    if (!(await tf.setBackend(name))) return false;
  } catch {
    return false;
  }
  if (name === 'cpu') {
    // tfjs-backend-cpu prints a multi-line "install tfjs-node" banner with its first tensor; our one-line
    // notice already says so. Its warnings are muted while PROD is set.
    const prod = tf.env().getBool('PROD');
    tf.env().set('PROD', true);
    tf.tensor([0]).dispose();
    tf.env().set('PROD', prod);
  }
  return true;
}

async function choose(requested: BackendName | undefined): Promise<{ name: BackendName; note: string }> {
  if (requested === 'tensorflow') {
    const native = loadNative();
    if (native.pkg == null || !(await start('tensorflow'))) {
      throw new Error(`tfjs backend 'tensorflow' was requested but is not available: ${native.why || 'it failed to start'}.`);
    }
    return { name: 'tensorflow', note: `${native.pkg}, requested` };
  }
  if (requested === 'wasm') {
    registerWasm();
    if (!(await start('wasm'))) throw new Error("tfjs backend 'wasm' was requested but failed to start.");
    return { name: 'wasm', note: `${await simdNote()}, requested` };
  }
  if (requested === 'cpu') {
    if (!(await start('cpu'))) throw new Error("tfjs backend 'cpu' was requested but failed to start.");
    return { name: 'cpu', note: 'requested; pure JS, about 100x slower than wasm' };
  }

  const native = loadNative();
  if (native.pkg != null && (await start('tensorflow'))) return { name: 'tensorflow', note: native.pkg };
  let wasmProblem = '';
  try {
    registerWasm();
    if (await start('wasm')) return { name: 'wasm', note: `${await simdNote()}; ${native.why}` };
    wasmProblem = 'wasm failed to start';
  } catch (err) {
    wasmProblem = `wasm unavailable: ${(err as Error).message.split('\n')[0]}`;
  }
  if (await start('cpu')) return { name: 'cpu', note: `${wasmProblem}; pure JS, about 100x slower` };
  throw new Error(`No tfjs backend could start (${wasmProblem}); reinstall @causalfusion/backend's dependencies.`);
}

async function simdNote(): Promise<string> {
  return (await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT')) ? 'SIMD' : 'no SIMD: this runtime lacks WebAssembly SIMD';
}

/**
 * Starts the tfjs backend and returns its name (`'tensorflow'`, `'wasm'` or `'cpu'`).
 *
 * Idempotent: later calls return the backend already chosen without printing again, unless they ask
 * for a different one explicitly, which switches to it. Throws on an unknown name or when an explicitly
 * requested backend cannot start.
 */
export async function initBackend(options: InitBackendOptions = {}): Promise<string> {
  let requested: BackendName | undefined;
  if (options.backend !== undefined) requested = checkName(String(options.backend), 'options.backend');
  else if (process.env.CAUSALFUSION_BACKEND) requested = checkName(process.env.CAUSALFUSION_BACKEND, 'CAUSALFUSION_BACKEND');

  const run = async (): Promise<string> => {
    if (chosen && (requested === undefined || requested === chosen.name)) return chosen.name;
    const { name, note } = await choose(requested);
    chosen = { name, requested };
    if (!options.quiet) process.stderr.write(`tfjs backend: ${name} (${note})\n`);
    return name;
  };
  // Chain calls so two callers never initialise at the same time.
  const next = (pending ?? Promise.resolve('')).catch(() => '').then(run);
  pending = next;
  return next;
}

/** The backend chosen by {@link initBackend}, or null before it ran. */
export function currentBackend(): BackendName | null {
  return chosen?.name ?? null;
}
