// onnxruntime-node hands back typed arrays of Node's main realm, and onnxruntime-common checks inputs with
// instanceof against the realm it was loaded in. jest runs each test file in its own realm with its own
// constructors, so both checks fail there. Give the test realm the main realm's constructors.
const vm = require('node:vm');
for (const name of [
  'Float32Array',
  'Float64Array',
  'Int8Array',
  'Uint8Array',
  'Int16Array',
  'Uint16Array',
  'Int32Array',
  'Uint32Array',
  'BigInt64Array',
  'BigUint64Array',
]) {
  globalThis[name] = vm.runInThisContext(name);
}
