/**
 * Beta schedules and timestep respacing, as in the official CausalFusion `diffusion/` package
 * (which follows ADM's `gaussian_diffusion.py` and `respace.py`). Everything is float64.
 */

/** Names accepted by {@link getNamedBetaSchedule}. */
export const BETA_SCHEDULES = ['linear', 'cosine'] as const;
export type BetaScheduleName = (typeof BETA_SCHEDULES)[number];

/** numpy.linspace(start, stop, n) for float64, endpoint included: start + i*step, last element = stop. */
function linspace(start: number, stop: number, n: number): Float64Array {
  const out = new Float64Array(n);
  if (n === 1) {
    out[0] = start;
    return out;
  }
  const step = (stop - start) / (n - 1);
  for (let i = 0; i < n; i++) out[i] = i * step + start;
  out[n - 1] = stop;
  return out;
}

/**
 * The beta schedule for `numTimesteps` diffusion steps.
 * - `linear`: Ho et al.'s 1e-4..0.02 for 1000 steps, scaled by 1000/numTimesteps so any step count
 *   describes the same process (the official `get_named_beta_schedule`).
 * - `cosine`: Nichol & Dhariwal's alpha_bar(t) = cos^2((t + 0.008) / 1.008 * pi/2), betas capped at 0.999.
 */
export function getNamedBetaSchedule(name: string, numTimesteps: number): Float64Array {
  if (!Number.isInteger(numTimesteps) || numTimesteps < 1) {
    throw new RangeError(`steps must be a positive integer, got ${numTimesteps}`);
  }
  if (name === 'linear') {
    const scale = 1000 / numTimesteps;
    return linspace(scale * 0.0001, scale * 0.02, numTimesteps);
  }
  if (name === 'cosine') {
    const alphaBar = (t: number) => Math.cos(((t + 0.008) / 1.008) * (Math.PI / 2)) ** 2;
    const betas = new Float64Array(numTimesteps);
    for (let i = 0; i < numTimesteps; i++) {
      const t1 = i / numTimesteps;
      const t2 = (i + 1) / numTimesteps;
      betas[i] = Math.min(1 - alphaBar(t2) / alphaBar(t1), 0.999);
    }
    return betas;
  }
  throw new RangeError(`unknown beta schedule "${name}"; allowed: ${BETA_SCHEDULES.join(', ')}`);
}

/** Python's round(): nearest integer, ties to even (banker's rounding). */
function pyRound(x: number): number {
  const f = Math.floor(x);
  const diff = x - f;
  if (diff > 0.5) return f + 1;
  if (diff < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

/**
 * Which of the original `numTimesteps` steps a respaced process keeps (the official `space_timesteps`),
 * sorted ascending.
 *
 * `respacing` is one of:
 * - `""` (keep all steps),
 * - `"250"` or `"10,15,20"`: split the steps into equal sections and take that many evenly strided
 *   steps from each (rounded with Python's round-half-to-even, as the official code),
 * - `"ddimN"`: the integer stride that gives exactly N steps (`ddim25` keeps 0, 40, ..., 960).
 */
export function spaceTimesteps(numTimesteps: number, respacing: string | number[]): number[] {
  if (typeof respacing === 'string') {
    const spec = respacing.trim();
    if (spec === '') return Array.from({ length: numTimesteps }, (_, i) => i);
    if (spec.startsWith('ddim')) {
      const desired = Number(spec.slice(4));
      if (!Number.isInteger(desired) || desired < 1) {
        throw new RangeError(`respacing "${spec}": expected "ddimN" with a positive integer N`);
      }
      for (let stride = 1; stride < numTimesteps; stride++) {
        if (Math.ceil(numTimesteps / stride) === desired) {
          return Array.from({ length: desired }, (_, i) => i * stride);
        }
      }
      throw new RangeError(
        `respacing "${spec}": no integer stride gives exactly ${desired} of ${numTimesteps} steps; ` +
          'use a count N with ceil(steps/stride) = N for some stride, or a plain count such as "' +
          desired +
          '"',
      );
    }
    const parts = spec.split(',').map((p) => p.trim());
    if (parts.some((p) => !/^\d+$/.test(p))) {
      throw new RangeError(
        `respacing "${spec}" is not understood; allowed: "" (all steps), a count like "250", ` + 'comma-separated section counts like "10,15,20", or "ddimN"',
      );
    }
    return spaceTimesteps(numTimesteps, parts.map(Number));
  }
  const sectionCounts = respacing;
  if (sectionCounts.length === 0) throw new RangeError('respacing: at least one section count is needed');
  const sizePer = Math.floor(numTimesteps / sectionCounts.length);
  const extra = numTimesteps % sectionCounts.length;
  let startIdx = 0;
  const steps = new Set<number>();
  sectionCounts.forEach((count, i) => {
    const size = sizePer + (i < extra ? 1 : 0);
    if (!Number.isInteger(count) || count < 1) {
      throw new RangeError(`respacing: section ${i} asks for ${count} steps; each section needs a positive integer count`);
    }
    if (size < count) {
      throw new RangeError(
        `respacing: cannot take ${count} steps from a section of ${size} steps ` +
          `(${numTimesteps} steps split into ${sectionCounts.length} sections); ask for at most ${size}`,
      );
    }
    const fracStride = count <= 1 ? 1 : (size - 1) / (count - 1);
    let cur = 0;
    for (let k = 0; k < count; k++) {
      steps.add(startIdx + pyRound(cur));
      cur += fracStride; // a running float sum, exactly as the official loop
    }
    startIdx += size;
  });
  return [...steps].sort((a, b) => a - b);
}
