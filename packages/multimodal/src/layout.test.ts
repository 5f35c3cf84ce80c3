/**
 * `@causalfusion/multimodal/layout`: the tfjs model takes its parameters from it, and the entry (what
 * @causalfusion/onnx imports) loads without tfjs.
 */
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { initBackend, MultimodalModel, type MultimodalConfig } from './index';
import { captionMask, multimodalParamEntries, textLossMask, textTargets, textToImageMask, validateMultimodalConfig, validateMultimodalShape } from './layout';

const CONFIG: MultimodalConfig = {
  imageHeight: 8, imageWidth: 12, channels: 1, patchSize: 2, textLength: 8, vocabSize: 24,
  hiddenSize: 32, depth: 2, numHeads: 2, mlpRatio: 2, captionDropoutProb: 0.1,
};

beforeAll(() => initBackend({ backend: 'cpu', quiet: true }));

describe('the parameter layout', () => {
  it('is MultimodalModel.stateEntries(): keys, order, training-layout shapes, transposition, trainability', () => {
    for (const config of [CONFIG, { ...CONFIG, depth: 3, mlpRatio: 1.5, channels: 3 }]) {
      const model = new MultimodalModel(config);
      try {
        expect(model.stateEntries().map((e) => [e.key, [...e.variable.shape], e.transposed, e.variable.trainable])).toEqual(
          multimodalParamEntries(config).map((e) => [e.key, e.shape, e.transposed, e.trainable]),
        );
      } finally {
        model.dispose();
      }
    }
  });

  it('starts the block with its bias-free qkv and ends with the LM head', () => {
    const keys = multimodalParamEntries(CONFIG).map((e) => e.key);
    expect(keys.slice(0, 3)).toEqual(['text_embed.weight', 'text_pos_embed', 'image_pos_embed']);
    expect(keys).not.toContain('blocks.0.attn.qkv.bias');
    expect(keys.slice(-4)).toEqual(['lm_head.0.weight', 'lm_head.0.bias', 'lm_head.1.weight', 'lm_head.1.bias']);
  });
});

describe('the rules', () => {
  it('a config without caption dropout is a valid shape; the config adds the dropout rule', () => {
    const { captionDropoutProb: _, ...shape } = CONFIG;
    expect(() => validateMultimodalShape(shape)).not.toThrow();
    expect(() => validateMultimodalShape({ ...shape, hiddenSize: 30, numHeads: 3 })).toThrow(/multiple of 4/);
    expect(() => validateMultimodalConfig({ ...CONFIG, captionDropoutProb: 1 })).toThrow(/captionDropoutProb/);
  });

  it('masks: causal text before the image (text-to-image), the image before causal text (captioning)', () => {
    const T = 3;
    const L = 2;
    // [text 3 | noised 2], one AR step: text causal and blind to the image; the noised tokens see everything
    expect(Array.from(textToImageMask(T, L, [2]))).toEqual([
      0, 1, 1, 1, 1,
      0, 0, 1, 1, 1,
      0, 0, 0, 1, 1,
      0, 0, 0, 0, 0,
      0, 0, 0, 0, 0,
    ]);
    // [image 2 | text 3]
    expect(Array.from(captionMask(L, T))).toEqual([
      0, 0, 1, 1, 1,
      0, 0, 1, 1, 1,
      0, 0, 0, 1, 1,
      0, 0, 0, 0, 1,
      0, 0, 0, 0, 0,
    ]);
  });

  it('text loss: caption tokens and the eos, not the pads nor a dropped row; targets shift left', () => {
    // [bos 7 8 eos pad] and [bos eos pad pad pad]
    const text = [1, 7, 8, 2, 0, 1, 2, 0, 0, 0];
    expect(Array.from(textLossMask(text, 5))).toEqual([1, 1, 1, 0, 0, 1, 0, 0, 0, 0]);
    expect(Array.from(textLossMask(text, 5, [1, 0]))).toEqual([0, 0, 0, 0, 0, 1, 0, 0, 0, 0]);
    expect(Array.from(textTargets(text, 5))).toEqual([7, 8, 2, 0, 0, 2, 0, 0, 0, 0]);
  });
});

describe('the @causalfusion/multimodal/layout entry', () => {
  const pkgDir = path.resolve(__dirname, '..');

  it('is exported as a subpath and points into dist', () => {
    const pkg = JSON.parse(fs.readFileSync(path.join(pkgDir, 'package.json'), 'utf8'));
    expect(pkg.exports['./layout']).toEqual({ types: './dist/layout.d.ts', default: './dist/layout.js' });
  });

  it('loads without tfjs (built dist, a fresh node)', () => {
    const entry = path.join(pkgDir, 'dist', 'layout.js');
    if (!fs.existsSync(entry)) throw new Error(`${entry} is missing: build the package first (pnpm turbo run build --filter @causalfusion/multimodal)`);
    const script = `const m = require(${JSON.stringify(entry)});
const loaded = Object.keys(require.cache).filter((f) => /@tensorflow|[\\\\/]backend[\\\\/]dist[\\\\/]/.test(f));
process.stdout.write(JSON.stringify({ loaded, exports: Object.keys(m).sort() }));`;
    const out = JSON.parse(execFileSync(process.execPath, ['-e', script], { encoding: 'utf8' }));
    expect(out.loaded).toEqual([]);
    expect(out.exports).toEqual(expect.arrayContaining(['multimodalParamEntries', 'textToImageMask', 'captionMask', 'textLossMask', 'textTargets', 'PAD_ID']));
  });
});
