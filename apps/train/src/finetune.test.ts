/**
 * The finetune task's pieces that need no model: the balanced, seeded labeled subset, the flags (the probe's
 * larger default learning rate, resumable keys, refused values) and `--ar-steps` of the generative task
 * (fixed S_train: equal splits, nothing drawn).
 */
import { createRng } from '@causalfusion/rng';
import { balancedSubset, parseFinetuneArgs, PROBE_LR } from './finetune';
import { drawStepRandomness } from './step';
import { parseTrainArgs } from './config';

describe('balancedSubset', () => {
  const labels = Array.from({ length: 1000 }, (_, i) => (i * 7) % 10);
  it('takes floor(n/K) per class, the first n mod K classes one more, seeded and sorted', () => {
    const a = balancedSubset(labels, 10, 23, 0);
    expect(a.length).toBe(23);
    const counts = new Array(10).fill(0);
    for (const i of a) counts[labels[i]]++;
    expect(counts).toEqual([3, 3, 3, 2, 2, 2, 2, 2, 2, 2]);
    expect(Array.from(a)).toEqual([...a].sort((x, y) => x - y));
    expect(balancedSubset(labels, 10, 23, 0)).toEqual(a);
    expect(balancedSubset(labels, 10, 23, 1)).not.toEqual(a);
  });
  it('refuses fewer labels than classes and classes too small for their share', () => {
    expect(() => balancedSubset(labels, 10, 9, 0)).toThrow('--labels 9: fewer labeled images than the 10 classes');
    expect(() => balancedSubset([0, 0, 0, 1], 2, 4, 0)).toThrow('class 1 has 1 training images, fewer than the 2');
  });
});

describe('parseFinetuneArgs', () => {
  it('gives a probe the larger learning rate unless --lr is given, and resolves the model path', () => {
    const probe = parseFinetuneArgs(['--task', 'classify', '--model', 'm', '--out', 'o', '--probe']);
    expect([probe.config.probe, probe.config.lr]).toEqual([true, PROBE_LR]);
    expect(probe.config.model).toBe(require('path').resolve('m'));
    const e2e = parseFinetuneArgs(['--model', 'm', '--out', 'o', '--lr', '3e-4']);
    expect([e2e.config.probe, e2e.config.lr, e2e.config.labels]).toEqual([false, 3e-4, 0]);
  });
  it('refuses other tasks and bad values, naming the flag', () => {
    expect(() => parseFinetuneArgs(['--task', 'generate', '--model', 'm', '--out', 'o'])).toThrow('--task must be classify');
    expect(() => parseFinetuneArgs(['--model', 'm', '--out', 'o', '--labels', '-3'])).toThrow('--labels must be an integer >= 0');
    expect(() => parseFinetuneArgs(['--model', 'm', '--out', 'o', '--ema-decay', '1'])).toThrow('--ema-decay must be in [0, 1)');
    expect(() => parseFinetuneArgs(['--model', 'm'])).toThrow('give the run folder with --out');
  });
});

describe('--ar-steps (fixed S_train)', () => {
  const recipe = { arStepDecay: 0.9, maxArWeight: 2, minArWeight: 1, order: 'random' as const, classDropout: 0.1 };
  it('splits every step into S equal AR steps; 0 draws them as the official recipe', () => {
    for (const [S, expected] of [
      [1, [16]],
      [4, [4, 4, 4, 4]],
      [3, [6, 5, 5]],
    ] as const) {
      const r = drawStepRandomness(createRng(0), 2, 16, 16, 1000, { ...recipe, arSteps: S });
      expect(r.splitSizes).toEqual(expected);
    }
    const drawn = new Set<number>();
    const rng = createRng(1);
    for (let i = 0; i < 50; i++) drawn.add(drawStepRandomness(rng, 2, 16, 16, 1000, { ...recipe, arSteps: 0 }).splitSizes.length);
    expect(drawn.size).toBeGreaterThan(3);
  });
  it('is a flag of the class task, checked against the token count', () => {
    expect(parseTrainArgs(['--preset', 'tiny', '--out', 'o', '--ar-steps', '4']).config.arSteps).toBe(4);
    expect(parseTrainArgs(['--preset', 'tiny', '--out', 'o']).config.arSteps).toBe(0);
    expect(() => parseTrainArgs(['--preset', 'tiny', '--out', 'o', '--ar-steps', '17'])).toThrow('--ar-steps 17 is more than the 16 tokens of a sample');
    expect(() => parseTrainArgs(['--preset', 'tiny', '--out', 'o', '--ar-steps', '-1'])).toThrow('--ar-steps must be an integer >= 0');
  });
});
