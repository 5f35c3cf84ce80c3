/**
 * The package is the tfjs-free half of the models: its built entry loads neither tfjs nor onnxruntime.
 */
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';

it('loads without tfjs or onnxruntime (built dist, a fresh node)', () => {
  const entry = path.resolve(__dirname, '..', 'dist', 'index.js');
  if (!fs.existsSync(entry)) throw new Error(`${entry} is missing: build the package first (pnpm turbo run build --filter @causalfusion/config)`);
  const script = `const m = require(${JSON.stringify(entry)});
const loaded = Object.keys(require.cache).filter((f) => /@tensorflow|onnxruntime/.test(f));
process.stdout.write(JSON.stringify({ loaded, exports: Object.keys(m).sort() }));`;
  const out = JSON.parse(execFileSync(process.execPath, ['-e', script], { encoding: 'utf8' }));
  expect(out.loaded).toEqual([]);
  expect(out.exports).toEqual(expect.arrayContaining(['trainingEntries', 'multimodalParamEntries', 'prepareTrainingTokens', 'HostAdamW', 'writeModelFolder']));
});
