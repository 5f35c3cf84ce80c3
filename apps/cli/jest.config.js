module.exports = {
  ...require('../../jest.preset.js'),
  // onnxruntime-node's typed arrays come from Node's main realm: see jest.setup.js
  setupFiles: ['<rootDir>/jest.setup.js'],
};
