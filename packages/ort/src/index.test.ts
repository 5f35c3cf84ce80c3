import { sessionOptions, toInt64 } from './index';

describe('sessionOptions', () => {
  it('inference: the device, all optimizations, no spin-waiting; threads when given', () => {
    expect(sessionOptions({ device: 'cpu', threads: 2 })).toEqual({
      executionProviders: ['cpu'],
      graphOptimizationLevel: 'all',
      intraOpNumThreads: 2,
      extra: { session: { intra_op: { allow_spinning: '0' } } },
    });
    expect(sessionOptions()).not.toHaveProperty('intraOpNumThreads');
  });

  it('training: sequential, one inter-op thread', () => {
    expect(sessionOptions({ purpose: 'training', threads: 3 })).toEqual({
      executionProviders: ['cpu'],
      graphOptimizationLevel: 'all',
      executionMode: 'sequential',
      intraOpNumThreads: 3,
      interOpNumThreads: 1,
    });
  });

  it('refuses a thread count that is not a positive integer', () => {
    for (const threads of [0, -1, 1.5, NaN]) expect(() => sessionOptions({ threads })).toThrow(/threads must be a positive integer/);
  });
});

it('toInt64', () => {
  expect(Array.from(toInt64([0, 3, -2]))).toEqual([0n, 3n, -2n]);
});
