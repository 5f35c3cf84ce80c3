/**
 * Parity with the official 20-step DDPM run (sampling_ddpm20.json), through @causalfusion/sampler's
 * `sample()` with the TransformerDenoiser (the sampler does CFG with null rows), and through the
 * model-level forwardInference with built-in CFG driving diffusion.step directly.
 * The recorded z0 and per-step noise are replayed by an Rng whose normal() pops them in order.
 */
import { initBackend } from '@causalfusion/backend';
import { createDiffusion } from '@causalfusion/diffusion';
import { Rng } from '@causalfusion/rng';
import { sample } from '@causalfusion/sampler';
import { loadModel } from './checkpoint';
import { TransformerDenoiser } from './denoiser';
import type { CausalDiffusionModel } from './model';
import { unpatchify } from '@causalfusion/config';
import { maxAbs, maxAbsDiff, printMeasured, readReference, record, refConfig, WEIGHTS } from './reference.test-util';

const ref = readReference('sampling_ddpm20.json');
let model: CausalDiffusionModel;

/** An Rng that returns recorded normals (z0, then the noise of each step) instead of drawing. */
class ReplayRng extends Rng {
  private readonly values: number[];
  private next = 0;
  constructor(values: number[]) {
    super(0);
    this.values = values;
  }
  override normal(): number {
    if (this.next >= this.values.length) throw new Error('ReplayRng: ran out of recorded normals');
    return this.values[this.next++];
  }
  get used(): number {
    return this.next;
  }
}

function recordedNormals(): number[] {
  return [...ref.z0.data, ...ref.step_noise.flatMap((s: { data: number[] }) => s.data)];
}

beforeAll(async () => {
  await initBackend({ backend: 'wasm', quiet: true });
  model = await loadModel(WEIGHTS, { config: refConfig(ref) });
});
afterAll(() => {
  model.dispose();
  printMeasured('sampling_ddpm20.json errors (relative to max|x|)');
});

describe('20-step DDPM with CFG 4 (sample.py)', () => {
  const diffusion = createDiffusion({ respacing: '20' });

  it('the respaced schedule feeds the recorded model timesteps', () => {
    expect(Array.from(diffusion.timestepMap)).toEqual(ref.timestep_map);
    expect(diffusion.samplingTimesteps().map((t) => diffusion.timestepMap[t])).toEqual(ref.model_timesteps);
  });

  it('sample() from @causalfusion/sampler with the TransformerDenoiser reproduces the final sample', async () => {
    const rng = new ReplayRng(recordedNormals());
    const result = await sample(new TransformerDenoiser(model), {
      conditions: ref.y,
      diffusion,
      cfgScale: ref.cfg_scale,
      rng,
    });
    expect(rng.used).toBe(ref.z0.data.length + 20 * ref.z0.data.length);
    const scale = maxAbs(ref.final_sample_tokens.data);
    expect(scale).toBeGreaterThan(100); // the run grows large: the comparison is relative
    const rel = record('sampler.final_sample_tokens', maxAbsDiff(result.tokens, ref.final_sample_tokens.data) / scale);
    expect(rel).toBeLessThan(1e-5);
    const nchw = unpatchify(result.tokens, 2, 4, 4, 1);
    expect(maxAbsDiff(nchw, ref.final_sample_latent_nchw.data) / scale).toBeLessThan(1e-5);
  });

  it('forwardInference with built-in CFG, stepped by diffusion.step, matches every step', () => {
    const cache = model.createCache([...ref.y, ref.null_class, ref.null_class]);
    const positions = Int32Array.from({ length: 32 }, (_, i) => i % 16);
    try {
      let x: ArrayLike<number> = ref.z0.data;
      let worst = 0;
      diffusion.samplingTimesteps().forEach((t, k) => {
        const { eps } = model.forwardInference(x, diffusion.timestepMap[t], cache, positions, 16, ref.cfg_scale);
        const step = diffusion.step(eps, t, x, undefined, { noise: ref.step_noise[k].data });
        x = step.prevSample;
        const recorded = ref.per_step[k].sample.data;
        worst = Math.max(worst, maxAbsDiff(Float32Array.from(x), recorded) / Math.max(1, maxAbs(recorded)));
      });
      expect(record('forwardInference.per_step_sample (max over steps)', worst)).toBeLessThan(1e-5);
    } finally {
      cache.dispose();
    }
  });
});
