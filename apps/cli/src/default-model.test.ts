/**
 * The model shipped with the CLI: present, small, described by its meta.json, and sampled alike by the two
 * runtimes (onnxruntime graphs built from its weights vs the tfjs model) over a full AR sampling run.
 */
import * as fs from 'fs';
import * as path from 'path';
import { initBackend } from '@causalfusion/backend';
import { createDiffusion } from '@causalfusion/diffusion';
import { OrtDenoiser } from '@causalfusion/onnx';
import { sample, type SampleOptions } from '@causalfusion/sampler';
import { loadModel, TransformerDenoiser } from '@causalfusion/transformer';
import { DEFAULT_MODEL_DIR, readModelFolder } from './model-folder';

jest.setTimeout(120_000);

describe('the shipped default model', () => {
  it('is a model folder under 20 MB that says how it was trained', () => {
    const folder = readModelFolder(undefined);
    expect(folder.isDefault).toBe(true);
    expect(folder.meta.dataset).toBe('mnist');
    expect(folder.meta.classNames).toEqual(['0', '1', '2', '3', '4', '5', '6', '7', '8', '9']);
    expect(folder.meta.training).toMatchObject({ weights: 'ema' });
    expect(Number(folder.meta.training?.steps)).toBeGreaterThan(0);
    const bytes = fs.readdirSync(DEFAULT_MODEL_DIR).reduce((n, f) => n + fs.statSync(path.join(DEFAULT_MODEL_DIR, f)).size, 0);
    expect(bytes).toBeLessThan(20e6);
    expect(fs.existsSync(path.join(DEFAULT_MODEL_DIR, 'README.md'))).toBe(true);
  });

  it('onnxruntime and tfjs draw the same samples with the same seed (4 AR steps, random order, CFG 3) to 1e-4', async () => {
    await initBackend({ backend: 'wasm', quiet: true });
    const model = await loadModel(DEFAULT_MODEL_DIR);
    const ort = await OrtDenoiser.load(DEFAULT_MODEL_DIR, { threads: 1 });
    try {
      const options: SampleOptions<number> = {
        conditions: [0, 3, 7, 9],
        arSteps: 4,
        order: 'random',
        diffusion: createDiffusion({ respacing: '10' }),
        cfgScale: 3,
        seed: 11,
        clipDenoised: true,
      };
      const a = await sample(ort, options);
      const b = await sample(new TransformerDenoiser(model), options);
      expect(a.splitSizes).toEqual(b.splitSizes);
      let worst = 0;
      for (let i = 0; i < a.tokens.length; i++) worst = Math.max(worst, Math.abs(a.tokens[i] - b.tokens[i]));
      expect(worst).toBeLessThan(1e-4);
    } finally {
      model.dispose();
      await ort.release();
    }
  });
});
