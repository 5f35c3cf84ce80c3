module.exports = {
  ...require('../../jest.preset.js'),
  // onnxruntime-node's typed arrays come from Node's main realm: see test-utils/jest.ort-realm.js
  setupFiles: ['<rootDir>/../../test-utils/jest.ort-realm.js'],
};
