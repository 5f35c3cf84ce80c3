/**
 * The dual-factorization sampler. The L tokens are split into S_eval AR steps along a token order; each
 * AR step runs a full reverse-diffusion loop on its own tokens only, attending to the cond tokens and
 * to the clean tokens of the earlier steps (pushed once into the denoiser's context), then pushes its
 * finished tokens as clean context. S_eval = 1 is plain diffusion, S_eval = L token-by-token AR.
 *
 * Zero-shot editing is the same loop with the kept tokens pushed as clean context first, under the new
 * condition; only the region to regenerate is diffused.
 */
import { createDiffusion, GaussianDiffusion } from '@causalfusion/diffusion';
import { createRng, Rng, Seed } from '@causalfusion/rng';
import type { Denoiser, DenoiserSession } from './denoiser';
import { checkSplitSizes, cumsum, equalSplits } from './factorization';
import { checkOrder, editRegion, EditRegionName, OrderName, tokenOrder } from './orders';

export interface SampleProgress {
  /** 1-based AR step and how many there are. */
  arStep: number;
  arSteps: number;
  /** 1-based diffusion step within this AR step and how many there are. */
  step: number;
  steps: number;
  /** The original timestep (0..999) the backbone was just fed. */
  timestep: number;
}

/** Counts of what the sampler asked of the backbone (the paper's cost argument, measurable). */
export interface SamplerStats {
  /** predictEps + pushClean calls. */
  backboneCalls: number;
  predictCalls: number;
  pushCalls: number;
  /** Sum over predictEps calls of rows x tokens: noised-token evaluations. */
  noisedTokenEvals: number;
  /** Sum over pushClean calls of rows x tokens. */
  cleanTokensPushed: number;
}

export interface Intermediate {
  arStep: number;
  step: number;
  timestep: number;
  /** [B, L, tokenDim]: finished tokens, the current x0 prediction for this AR step's tokens, 0 elsewhere. */
  x0: Float32Array;
}

export interface SampleOptions<C> {
  /** One condition per sample (e.g. class labels); the batch size is its length. */
  conditions: ReadonlyArray<C>;
  /** S_eval: number of AR steps, split into equal sizes along the order. Default 1 (plain diffusion). */
  arSteps?: number;
  /** Explicit AR step sizes (override `arSteps`); must add up to the number of tokens generated. */
  splitSizes?: ArrayLike<number>;
  /**
   * Token order: a name (`raster` default, `random`, `block`, `dilated`, on the `grid`), one Int32Array
   * for the whole batch, or one per sample. Raster indices in generation order.
   */
  order?: OrderName | Int32Array | ReadonlyArray<Int32Array>;
  /** Token grid [h, w] for named orders and regions. Default: square. */
  grid?: [number, number];
  /** Block size / dilation for the `block` / `dilated` orders. */
  blockSize?: number;
  dilation?: number;
  /** The (respaced) diffusion to run per AR step. Default: linear, 1000 steps respaced to 250. */
  diffusion?: GaussianDiffusion;
  /** `ddpm` (default) or `ddim`, and DDIM's eta. */
  method?: 'ddpm' | 'ddim';
  eta?: number;
  /** Clamp each x_0 estimate to [-1, 1] (for data in [-1, 1] such as pixels; off for latents). Default off. */
  clipDenoised?: boolean;
  /** Classifier-free guidance scale (1 = off, the default). Must be >= 1. */
  cfgScale?: number;
  /** Guide only when lo <= t < hi on the original timestep; outside, the cond prediction is used. Default [0, 1000]. */
  cfgInterval?: [number, number];
  /** Seed (or a generator) for the noise and the random order. Default seed 0. */
  seed?: Seed;
  rng?: Rng;
  /**
   * One seed per sample instead: sample b's random order and all of its noise come from its own stream,
   * so a sample does not depend on which other samples share its batch (sharded sampling: the same
   * image whether it is drawn alone, in a shard or in the whole batch). Overrides `seed` / `rng`.
   */
  rowSeeds?: ReadonlyArray<Seed>;
  /**
   * Called after each diffusion step. A returned promise is awaited before the next step: a server can let
   * its other work (sockets, timers) run between steps of a backbone that computes synchronously.
   */
  onProgress?: (progress: SampleProgress) => unknown;
  /** Record x0 predictions on the full canvas, every step (`true`) or every `every` steps. */
  intermediates?: boolean | { every: number };
  /** Hears each intermediate as it is recorded (needs `intermediates`): frames can be shown while sampling goes on. */
  onIntermediate?: (frame: Intermediate) => void;
  /** Once aborted, the sampler stops before its next diffusion step and throws the signal's reason. */
  signal?: AbortSignal;
}

export interface SampleResult {
  /** [B, L, tokenDim], raster token order. */
  tokens: Float32Array;
  /** The split sizes used. */
  splitSizes: number[];
  stats: SamplerStats;
  intermediates?: Intermediate[];
}

export interface EditOptions<C> extends SampleOptions<C> {
  /** The images' tokens [B, L, tokenDim], raster order. Kept tokens come back bit-identical. */
  tokens: Float32Array;
  /** What to regenerate: a preset name, or a Uint8Array of L with 1 = regenerate, 0 = keep. */
  region: EditRegionName | Uint8Array;
}

/** Sample B new token sets with S_eval AR steps. */
export async function sample<C>(denoiser: Denoiser<C>, options: SampleOptions<C>): Promise<SampleResult> {
  const L = denoiser.numTokens;
  return generate(denoiser, options, null, new Uint8Array(L).fill(1));
}

/**
 * Zero-shot editing: keep the tokens outside `region` as clean context under the NEW conditions and
 * generate the region with S_eval AR steps.
 */
export async function edit<C>(denoiser: Denoiser<C>, options: EditOptions<C>): Promise<SampleResult> {
  const L = denoiser.numTokens;
  const [h, w] = gridOf(L, options.grid);
  let region: Uint8Array;
  if (typeof options.region === 'string') {
    region = editRegion(options.region, h, w);
  } else {
    region = options.region;
    if (region.length !== L) {
      throw new RangeError(`edit region has ${region.length} entries but the image has ${L} tokens (${h} x ${w}); give one per token`);
    }
  }
  const expected = options.conditions.length * L * denoiser.tokenDim;
  if (options.tokens.length !== expected) {
    throw new RangeError(
      `edit: tokens have ${options.tokens.length} values, expected ${expected} ` +
        `(${options.conditions.length} images x ${L} tokens x ${denoiser.tokenDim} values)`,
    );
  }
  let toGenerate = 0;
  for (let i = 0; i < L; i++) toGenerate += region[i] ? 1 : 0;
  if (toGenerate === 0) throw new RangeError('edit: the region to regenerate is empty; mark at least one token with 1');
  return generate(denoiser, options, options.tokens, region);
}

function gridOf(L: number, grid?: [number, number]): [number, number] {
  if (grid) {
    if (grid[0] * grid[1] !== L) throw new RangeError(`grid ${grid[0]} x ${grid[1]} does not hold the ${L} tokens of a sample`);
    return grid;
  }
  const side = Math.round(Math.sqrt(L));
  if (side * side !== L) throw new RangeError(`${L} tokens do not form a square grid; pass grid: [h, w]`);
  return [side, side];
}

/**
 * Where a batch's random numbers come from: one stream for the batch (drawn row after row), or one
 * stream per row. `normals(perRow)` draws perRow values for each of the B rows, in row order.
 */
class BatchRandomness {
  constructor(
    private readonly shared: Rng | null,
    private readonly rows: Rng[] | null,
  ) {}

  static of(options: { seed?: Seed; rng?: Rng; rowSeeds?: ReadonlyArray<Seed> }, B: number): BatchRandomness {
    if (options.rowSeeds) {
      if (options.rowSeeds.length !== B) throw new RangeError(`rowSeeds: got ${options.rowSeeds.length} seeds for a batch of ${B}`);
      return new BatchRandomness(
        null,
        options.rowSeeds.map((s) => createRng(s)),
      );
    }
    return new BatchRandomness(options.rng ?? createRng(options.seed ?? 0), null);
  }

  /** The stream of row b's random order. */
  forRow(b: number): Rng {
    return this.rows ? this.rows[b] : this.shared!;
  }

  normals(B: number, perRow: number): Float64Array {
    if (!this.rows) return this.shared!.normalArray(B * perRow);
    const out = new Float64Array(B * perRow);
    this.rows.forEach((r, b) => r.fillNormal(out.subarray(b * perRow, (b + 1) * perRow)));
    return out;
  }

  /** A normal source for one diffusion step over B rows of perRow values (draws routed to each row's stream). */
  stepSource(perRow: number): { normal(): number } {
    if (!this.rows) return this.shared!;
    const rows = this.rows;
    let i = 0;
    return { normal: () => rows[Math.floor(i++ / perRow)].normal() };
  }
}

/** The per-sample orders (full permutations of 0..L-1). */
function resolveOrders<C>(options: SampleOptions<C>, L: number, B: number, random: BatchRandomness): Int32Array[] {
  const order = options.order ?? 'raster';
  if (typeof order === 'string') {
    const [h, w] = gridOf(L, options.grid);
    const opts = (b: number) => ({ blockSize: options.blockSize, dilation: options.dilation, rng: random.forRow(b) });
    // A random order is drawn per sample; the others are the same for every sample.
    if (order === 'random') return Array.from({ length: B }, (_, b) => tokenOrder(order, h, w, opts(b)));
    const shared = tokenOrder(order, h, w, opts(0));
    return Array.from({ length: B }, () => shared);
  }
  if (order instanceof Int32Array) {
    checkOrder(order, L);
    return Array.from({ length: B }, () => order);
  }
  if (order.length !== B) throw new RangeError(`order: got ${order.length} per-sample orders for a batch of ${B}`);
  order.forEach((o, b) => checkOrder(o, L, `order of sample ${b}`));
  return [...order];
}

async function generate<C>(denoiser: Denoiser<C>, options: SampleOptions<C>, source: Float32Array | null, region: Uint8Array): Promise<SampleResult> {
  const L = denoiser.numTokens;
  const D = denoiser.tokenDim;
  const B = options.conditions.length;
  if (B === 0) throw new RangeError('conditions: at least one sample is needed');
  const cfgScale = options.cfgScale ?? 1;
  if (!(cfgScale >= 1)) throw new RangeError(`guidance scale ${cfgScale} is below 1; use 1 (off) or more`);
  const [lo, hi] = options.cfgInterval ?? [0, 1000];
  if (!(lo <= hi)) throw new RangeError(`cfg interval [${lo}, ${hi}] is empty; lo must be <= hi`);
  const guided = cfgScale !== 1;
  const random = BatchRandomness.of(options, B);
  const diffusion = options.diffusion ?? createDiffusion({ respacing: '250' });
  const method = options.method ?? 'ddpm';
  const every = options.intermediates === true ? 1 : options.intermediates ? options.intermediates.every : 0;

  // Which tokens to generate, in generation order, per sample.
  const fullOrders = resolveOrders(options, L, B, random);
  const genOrders = fullOrders.map((o) => Int32Array.from(o).filter((p) => region[p] === 1));
  const G = genOrders[0].length;
  const splitSizes = options.splitSizes ? Array.from(options.splitSizes) : equalSplits(G, options.arSteps ?? 1);
  checkSplitSizes(splitSizes, G);
  const bounds = cumsum(splitSizes);

  const rows = guided ? 2 * B : B; // conditional rows, then unconditional ones
  const stats: SamplerStats = { backboneCalls: 0, predictCalls: 0, pushCalls: 0, noisedTokenEvals: 0, cleanTokensPushed: 0 };
  const canvas = source ? Float32Array.from(source) : new Float32Array(B * L * D);
  const intermediates: Intermediate[] = [];

  const conds: (C | null)[] = [...options.conditions];
  if (guided) for (let b = 0; b < B; b++) conds.push(null);
  const session: DenoiserSession = await denoiser.start(conds);

  /** Gather per-sample positions into [rows, n] (the unconditional rows repeat the conditional ones). */
  const positionsFor = (perSample: Int32Array[], n: number): Int32Array => {
    const out = new Int32Array(rows * n);
    for (let r = 0; r < rows; r++) out.set(perSample[r % B].subarray(0, n), r * n);
    return out;
  };
  /** Copy [B, n, D] values to all rows. */
  const toRows = (values: ArrayLike<number>, n: number): Float32Array => {
    const out = new Float32Array(rows * n * D);
    const per = B * n * D;
    for (let i = 0; i < per; i++) out[i] = values[i];
    if (guided) out.copyWithin(per, 0, per);
    return out;
  };

  try {
    // Editing: the kept tokens become clean context before anything is generated.
    if (source) {
      const kept = fullOrders.map((o) => Int32Array.from(o).filter((p) => region[p] === 0));
      const n = kept[0].length;
      if (n > 0) {
        const tokens = new Float32Array(B * n * D);
        for (let b = 0; b < B; b++)
          for (let j = 0; j < n; j++) tokens.set(source.subarray((b * L + kept[b][j]) * D, (b * L + kept[b][j] + 1) * D), (b * n + j) * D);
        await session.pushClean(toRows(tokens, n), positionsFor(kept, n), n);
        stats.pushCalls++;
        stats.cleanTokensPushed += rows * n;
      }
    }

    const steps = diffusion.samplingTimesteps();
    for (let k = 0; k < splitSizes.length; k++) {
      const n = splitSizes[k];
      const stepOrders = genOrders.map((o) => o.subarray(bounds[k], bounds[k + 1]));
      const positions = positionsFor(stepOrders, n);
      let x = random.normals(B, n * D); // x_T for this AR step's tokens
      let x0: Float64Array = x;
      for (let s = 0; s < steps.length; s++) {
        options.signal?.throwIfAborted();
        const t = steps[s];
        const modelT = diffusion.timestepMap[t];
        const out = await session.predictEps(toRows(x, n), positions, n, modelT);
        stats.predictCalls++;
        stats.noisedTokenEvals += rows * n;
        if (out.length !== rows * n * D) {
          throw new RangeError(`the denoiser returned ${out.length} eps values, expected ${rows * n * D} (${rows} rows x ${n} tokens x ${D})`);
        }
        const eps = combineGuidance(out, B * n * D, guided && modelT >= lo && modelT < hi ? cfgScale : null);
        const next = diffusion.step(eps, t, x, random.stepSource(n * D), { method, eta: options.eta, clipDenoised: options.clipDenoised });
        x = next.prevSample;
        x0 = next.predXStart;
        if (every && (s % every === every - 1 || s === steps.length - 1)) {
          const frame = Float32Array.from(canvas);
          // tokens not generated yet (this step's and later ones) show as 0, then this step's x0 estimate
          for (let b = 0; b < B; b++) for (const p of genOrders[b].subarray(bounds[k])) frame.fill(0, (b * L + p) * D, (b * L + p + 1) * D);
          scatter(frame, x0, stepOrders, n, L, D);
          const recorded = { arStep: k + 1, step: s + 1, timestep: modelT, x0: frame };
          intermediates.push(recorded);
          options.onIntermediate?.(recorded);
        }
        await options.onProgress?.({ arStep: k + 1, arSteps: splitSizes.length, step: s + 1, steps: steps.length, timestep: modelT });
      }
      const clean = Float32Array.from(x);
      scatter(canvas, clean, stepOrders, n, L, D);
      if (k < splitSizes.length - 1) {
        await session.pushClean(toRows(clean, n), positions, n);
        stats.pushCalls++;
        stats.cleanTokensPushed += rows * n;
      }
    }
  } finally {
    session.dispose?.();
  }
  stats.backboneCalls = stats.predictCalls + stats.pushCalls;
  return { tokens: canvas, splitSizes, stats, intermediates: every ? intermediates : undefined };
}

/** Rows [0, per) are conditional, [per, 2 per) unconditional: uncond + s (cond - uncond), or cond alone. */
function combineGuidance(out: Float32Array, per: number, scale: number | null): Float64Array {
  const eps = new Float64Array(per);
  if (scale === null) {
    for (let i = 0; i < per; i++) eps[i] = out[i];
  } else {
    for (let i = 0; i < per; i++) eps[i] = out[per + i] + scale * (out[i] - out[per + i]);
  }
  return eps;
}

/** Write [B, n, D] values to their raster positions in a [B, L, D] canvas. */
function scatter(canvas: Float32Array, values: ArrayLike<number>, orders: Int32Array[], n: number, L: number, D: number): void {
  for (let b = 0; b < orders.length; b++)
    for (let j = 0; j < n; j++) {
      const dst = (b * L + orders[b][j]) * D;
      const src = (b * n + j) * D;
      for (let d = 0; d < D; d++) canvas[dst + d] = values[src + d];
    }
}
