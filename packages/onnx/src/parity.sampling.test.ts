/**
 * Full sampling runs through @causalfusion/sampler's `sample()` with the OrtDenoiser: the official
 * 20-step DDPM run (sampling_ddpm20.json, recorded noise replayed), and AR runs (1, 2 and 4 AR steps,
 * random token orders) against the tfjs TransformerDenoiser with the same seed.
 */
import { createDiffusion } from '@causalfusion/diffusion';
import { Rng } from '@causalfusion/rng';
import { readSafetensors } from '@causalfusion/safetensors';
import { sample, type SampleOptions } from '@causalfusion/sampler';
import { initBackend, loadModel, TransformerDenoiser, type CausalDiffusionModel } from '@causalfusion/transformer';
import { OrtDenoiser } from './denoiser';
import { maxAbs, maxAbsDiff, printMeasured, readReference, record, refConfig, WEIGHTS } from './reference.test-util';

const ref = readReference('sampling_ddpm20.json');
let ortDenoiser: OrtDenoiser;
let model: CausalDiffusionModel;

/** An Rng that returns recorded normals (z0, then the noise of each step) instead of drawing. */
class ReplayRng extends Rng {
  private next = 0;
  constructor(private readonly values: number[]) {
    super(0);
  }
  override normal(): number {
    if (this.next >= this.values.length) throw new Error('ReplayRng: ran out of recorded normals');
    return this.values[this.next++];
  }
}

beforeAll(async () => {
  ortDenoiser = await OrtDenoiser.fromWeights(refConfig(ref), readSafetensors(WEIGHTS).tensors, { threads: 1 });
  await initBackend({ backend: 'wasm', quiet: true });
  model = await loadModel(WEIGHTS, { config: refConfig(ref) });
});
afterAll(async () => {
  await ortDenoiser.release();
  model.dispose();
  printMeasured('sampling errors (relative to max|x|)');
});

describe('sampling with the OrtDenoiser', () => {
  const diffusion = createDiffusion({ respacing: '20' });

  it('reproduces the official 20-step DDPM run with CFG 4 (sample.py), as the tfjs path does', async () => {
    const normals = [...ref.z0.data, ...ref.step_noise.flatMap((s: { data: number[] }) => s.data)];
    const options = { conditions: ref.y as number[], diffusion, cfgScale: ref.cfg_scale };
    const ort = await sample(ortDenoiser, { ...options, rng: new ReplayRng(normals) });
    const tfjs = await sample(new TransformerDenoiser(model), { ...options, rng: new ReplayRng(normals) });
    const scale = maxAbs(ref.final_sample_tokens.data);
    expect(scale).toBeGreaterThan(100); // the run grows large: compare relatively
    expect(record('ddpm20.final_sample_tokens vs reference', maxAbsDiff(ort.tokens, ref.final_sample_tokens.data) / scale)).toBeLessThan(1e-5);
    expect(record('ddpm20.final_sample_tokens vs tfjs', maxAbsDiff(ort.tokens, tfjs.tokens) / scale)).toBeLessThan(1e-5);
    record('ddpm20 max|x|', scale);
  });

  it.each([1, 2, 4])('%i AR step(s), random order, CFG 3: the same sample as the tfjs TransformerDenoiser', async (arSteps) => {
    const options: SampleOptions<number> = {
      conditions: [3, 7, 0],
      arSteps,
      order: 'random',
      cfgScale: 3,
      diffusion: createDiffusion({ respacing: '10' }),
      seed: 42,
    };
    const ort = await sample(ortDenoiser, options);
    const tfjs = await sample(new TransformerDenoiser(model), options);
    expect(ort.splitSizes).toEqual(tfjs.splitSizes);
    expect(ort.stats).toEqual(tfjs.stats);
    expect(ort.stats.pushCalls).toBe(arSteps - 1);
    const rel = record(`ar${arSteps}.tokens vs tfjs`, maxAbsDiff(ort.tokens, tfjs.tokens) / Math.max(1, maxAbs(tfjs.tokens)));
    expect(rel).toBeLessThan(1e-5);
    record(`ar${arSteps}.tokens vs tfjs (abs)`, maxAbsDiff(ort.tokens, tfjs.tokens));
  });
});
