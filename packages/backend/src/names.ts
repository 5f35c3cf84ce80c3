/**
 * `@causalfusion/backend/names`: the tfjs backends this package can start, loadable without tfjs (a command
 * line checks `--backend` before anything starts).
 */
export type BackendName = 'tensorflow' | 'wasm' | 'cpu';

export const BACKEND_NAMES: readonly BackendName[] = ['tensorflow', 'wasm', 'cpu'];
