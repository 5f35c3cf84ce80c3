/**
 * Import FIRST in a test that runs onnxruntime-node (as @causalfusion/onnx's jest.setup.js does for its
 * tests): onnxruntime-node hands back typed arrays of Node's main realm, and onnxruntime-common checks
 * them with instanceof against the realm it was loaded in; jest runs each test file in its own realm with
 * its own constructors. Give the test realm the main realm's constructors before anything else loads.
 */
// eslint-disable-next-line @typescript-eslint/no-require-imports
const vm = require('node:vm') as typeof import('node:vm');
for (const name of ['Float32Array', 'Float64Array', 'Int8Array', 'Uint8Array', 'Int16Array', 'Uint16Array', 'Int32Array', 'Uint32Array', 'BigInt64Array', 'BigUint64Array']) {
  (globalThis as Record<string, unknown>)[name] = vm.runInThisContext(name);
}
export {};
