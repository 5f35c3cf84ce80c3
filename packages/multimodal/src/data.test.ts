/**
 * The `@causalfusion/multimodal/data` entry loads without tfjs: what the training app's onnxruntime path
 * and the CLI's input checks take from this package.
 */
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { MULTIMODAL_META_FORMAT, type MultimodalMeta } from '@causalfusion/config';
import { DEFAULT_GENERATE_SAMPLING, modelSampling } from './model-folder';

const pkgDir = path.resolve(__dirname, '..');

it('is exported as a subpath and points into dist', () => {
  const pkg = JSON.parse(fs.readFileSync(path.join(pkgDir, 'package.json'), 'utf8'));
  expect(pkg.exports['./data']).toEqual({ types: './dist/data.d.ts', default: './dist/data.js' });
});

it('loads without tfjs (built dist, a fresh node)', () => {
  const entry = path.join(pkgDir, 'dist', 'data.js');
  if (!fs.existsSync(entry)) throw new Error(`${entry} is missing: build the package first (pnpm turbo run build --filter @causalfusion/multimodal)`);
  const script = `const m = require(${JSON.stringify(entry)});
const loaded = Object.keys(require.cache).filter((f) => /@tensorflow|[\\\\/]backend[\\\\/]dist[\\\\/]/.test(f));
process.stdout.write(JSON.stringify({ loaded, exports: Object.keys(m).sort() }));`;
  const out = JSON.parse(execFileSync(process.execPath, ['-e', script], { encoding: 'utf8' }));
  expect(out.loaded).toEqual([]);
  expect(out.exports).toEqual(expect.arrayContaining(['CaptionedDataset', 'CaptionCodec', 'CanvasCodec', 'saveMultimodalModel', 'readMultimodalFolder']));
});

it("modelSampling: the model's meta.json sampling field by field over the defaults", () => {
  const meta: MultimodalMeta = { format: MULTIMODAL_META_FORMAT, dataset: 'mnist-compositions', words: [] };
  expect(modelSampling(meta)).toEqual(DEFAULT_GENERATE_SAMPLING);
  expect(modelSampling({ ...meta, sampling: { sampler: 'ddim', cfg: 4 } })).toEqual({ sampler: 'ddim', arSteps: 4, steps: 50, cfg: 4 });
});
