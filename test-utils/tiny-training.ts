/**
 * The tiny training runs of the CLI and training-app tests: the `tiny` class preset (samples off, 2-step grids,
 * one thread) and the `multimodal-tiny` preset, into `out` for `steps` steps.
 */
export const tinyClassArgs = (out: string, steps: number): string[] => [
  '--preset',
  'tiny',
  '--out',
  out,
  '--steps',
  String(steps),
  '--sample-every',
  '1000',
  '--sample-steps',
  '2',
  '--threads',
  '1',
];

export const tinyMultimodalArgs = (out: string, steps: number): string[] => [
  '--task',
  'multimodal',
  '--preset',
  'multimodal-tiny',
  '--out',
  out,
  '--steps',
  String(steps),
];
