/**
 * Token orders (the paper's Table 3) and edit regions on an h x w grid of tokens. An order is an
 * Int32Array of raster indices (row * w + col) in the order the tokens are generated; an AR step takes
 * the next `splitSize` tokens of it.
 */
import type { Rng } from '@causalfusion/rng';

export type OrderName = 'raster' | 'random' | 'block' | 'dilated';
export const ORDER_NAMES: readonly OrderName[] = ['raster', 'random', 'block', 'dilated'];

export interface OrderOptions {
  /** Block side k for `block` (k x k blocks, visited in raster order, raster inside each). Default 2. */
  blockSize?: number;
  /** Stride d for `dilated`. Default 2. */
  dilation?: number;
  /** Needed for `random`. */
  rng?: Rng;
}

function checkGrid(h: number, w: number): void {
  if (!Number.isInteger(h) || !Number.isInteger(w) || h < 1 || w < 1) {
    throw new RangeError(`token grid must be positive integers, got ${h} x ${w}`);
  }
}

/**
 * The generation order of the h x w tokens.
 * - `raster`: row by row.
 * - `random`: a uniformly random permutation (the training default).
 * - `block`: k x k blocks in raster order, tokens inside a block in raster order (edge blocks may be smaller).
 * - `dilated`: the d x d phases (row mod d, col mod d) one after another in raster order of the phase,
 *   tokens of a phase in raster order: every AR step covers the whole canvas sparsely first.
 */
export function tokenOrder(name: OrderName | string, h: number, w: number, options: OrderOptions = {}): Int32Array {
  checkGrid(h, w);
  const L = h * w;
  const out = new Int32Array(L);
  switch (name) {
    case 'raster':
      for (let i = 0; i < L; i++) out[i] = i;
      return out;
    case 'random':
      if (!options.rng) throw new TypeError('the random token order needs an rng (e.g. createRng(seed))');
      return options.rng.permutation(L);
    case 'block': {
      const k = options.blockSize ?? 2;
      if (!Number.isInteger(k) || k < 1) throw new RangeError(`block size must be a positive integer, got ${k}`);
      let n = 0;
      for (let br = 0; br < h; br += k)
        for (let bc = 0; bc < w; bc += k) for (let r = br; r < Math.min(br + k, h); r++) for (let c = bc; c < Math.min(bc + k, w); c++) out[n++] = r * w + c;
      return out;
    }
    case 'dilated': {
      const d = options.dilation ?? 2;
      if (!Number.isInteger(d) || d < 1) throw new RangeError(`dilation must be a positive integer, got ${d}`);
      let n = 0;
      for (let pr = 0; pr < d; pr++) for (let pc = 0; pc < d; pc++) for (let r = pr; r < h; r += d) for (let c = pc; c < w; c += d) out[n++] = r * w + c;
      return out;
    }
    default:
      throw new RangeError(`unknown token order "${name}"; allowed: ${ORDER_NAMES.join(', ')}`);
  }
}

/** Check that an order is a permutation of 0..L-1. */
export function checkOrder(order: ArrayLike<number>, L: number, label = 'order'): void {
  if (order.length !== L) throw new RangeError(`${label} has ${order.length} entries but there are ${L} tokens`);
  const seen = new Uint8Array(L);
  for (let i = 0; i < L; i++) {
    const p = order[i];
    if (!Number.isInteger(p) || p < 0 || p >= L) throw new RangeError(`${label}: position ${p} is out of range 0..${L - 1}`);
    if (seen[p]) throw new RangeError(`${label}: position ${p} appears twice; an order must visit every token once`);
    seen[p] = 1;
  }
}

export type EditRegionName = 'center' | 'top' | 'bottom' | 'outer';
export const EDIT_REGIONS: readonly EditRegionName[] = ['center', 'top', 'bottom', 'outer'];

/**
 * The region to regenerate for zero-shot editing, as a Uint8Array over the h x w tokens (1 = regenerate,
 * 0 = keep).
 * - `center`: the central half in each direction (rows h/4..3h/4, cols w/4..3w/4, rounded);
 * - `top` / `bottom`: the top / bottom half of the rows (an odd middle row goes to the bottom);
 * - `outer`: everything but the center (a ring).
 */
export function editRegion(name: EditRegionName | string, h: number, w: number): Uint8Array {
  checkGrid(h, w);
  const mask = new Uint8Array(h * w);
  const r0 = Math.floor(h / 4),
    r1 = h - r0;
  const c0 = Math.floor(w / 4),
    c1 = w - c0;
  const inCenter = (r: number, c: number) => r >= r0 && r < r1 && c >= c0 && c < c1;
  for (let r = 0; r < h; r++) {
    for (let c = 0; c < w; c++) {
      let v: boolean;
      switch (name) {
        case 'center':
          v = inCenter(r, c);
          break;
        case 'outer':
          v = !inCenter(r, c);
          break;
        case 'top':
          v = r < Math.floor(h / 2);
          break;
        case 'bottom':
          v = r >= Math.floor(h / 2);
          break;
        default:
          throw new RangeError(`unknown edit region "${name}"; allowed: ${EDIT_REGIONS.join(', ')}, or a mask`);
      }
      mask[r * w + c] = v ? 1 : 0;
    }
  }
  return mask;
}
