/**
 * The ORT training step against one official training step (training_backward.json): the loss, every
 * parameter's gradient, the global norm before clipping and every parameter after clip + AdamW.
 */
import { readSafetensors } from '@causalfusion/safetensors';
import { trainStepParity } from './train-parity';
import { printMeasured, readReference, record, WEIGHTS } from './reference.test-util';

describe('ORT training step vs the official one (training_backward.json)', () => {
  it('matches the loss, every gradient, the grad norm and the AdamW update', async () => {
    const ref = readReference('training_backward.json');
    const p = await trainStepParity(ref, readSafetensors(WEIGHTS).tensors);
    expect(record('loss (rel)', p.lossErr)).toBeLessThan(1e-5);
    expect(record('grad norm (rel)', Math.abs(p.gradNorm - ref.grad_norm_before_clip) / ref.grad_norm_before_clip)).toBeLessThan(1e-5);
    for (const [key, err] of p.gradErrs) expect([key, record(`grad ${key}`, err)]).toEqual([key, expect.any(Number)]);
    expect(record('worst gradient (rel to max)', p.gradErr)).toBeLessThan(1e-4);
    expect(record('worst updated parameter (rel to max)', p.updateErr)).toBeLessThan(1e-4);
    expect(p.gradErrs.size).toBe(Object.keys(ref.grads).length);
    // only the k_norm biases, whose gradient is zero in exact arithmetic, are roundoff
    expect(p.roundoff).toEqual(['blocks.0.attn.k_norm.bias', 'blocks.1.attn.k_norm.bias']);
    expect(p.updateErrs.size).toBe(p.gradErrs.size - 2);
    printMeasured('training_backward.json (ORT) errors');
  });
});
