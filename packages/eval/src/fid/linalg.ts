/**
 * Symmetric linear algebra for the Frechet distance, on row-major Float64Array.
 *
 * tr sqrt(S1 S2) only needs the eigenvalues of S1 S2, which equal those of the symmetric F^T S2 F for any
 * factor S1 = F F^T. So: a pivoted Cholesky of S1 (rank-revealing, handles singular covariances), one
 * product F^T S2 F, and the eigenvalues of that symmetric matrix. The eigenvalues come from the two-stage
 * reduction LAPACK uses for large matrices: full -> band with blocked Householder QR (all O(n^3) work is
 * matrix products, done by onnxruntime's GEMM), band -> tridiagonal by Householder bulge chasing (O(n^2 b)),
 * then implicit QL on the tridiagonal matrix. No eigenvectors are ever formed.
 */
import type { MatMul } from './matmul';

const EPS = Number.EPSILON;

export interface PivotedCholesky {
  /** n x rank, row-major, rows in the ORIGINAL order: S ~= factor * factor^T. */
  factor: Float64Array;
  /** The same rows in pivot order (lower trapezoidal, n x rank): S[perm[i]][perm[j]] ~= (lower lower^T)[i][j]. */
  lower: Float64Array;
  perm: Int32Array;
  rank: number;
}

/**
 * Pivoted Cholesky S = P L L^T P^T, stopped when the largest remaining pivot is <= tol, with LAPACK
 * dpstrf's default tolerance n * eps * max(diag S). Blocked: panels of `blockSize` columns are factored
 * in JavaScript (pivot search needs the updated diagonal), the trailing update is one matrix product.
 */
export async function pivotedCholesky(s: Float64Array, n: number, mm: MatMul, blockSize = 128): Promise<PivotedCholesky> {
  const l = new Float64Array(n * n); // row i = pivot position i; columns < rank used
  const perm = new Int32Array(n);
  const dd = new Float64Array(n); // diagonal of the not-yet-factored part
  let maxDiag = 0;
  for (let i = 0; i < n; i++) {
    perm[i] = i;
    dd[i] = s[i * n + i];
    maxDiag = Math.max(maxDiag, dd[i]);
  }
  const tol = n * EPS * maxDiag;
  let rank = 0;
  let done = !(maxDiag > 0);
  // `w` is the trailing block S[k0.., k0..] (pivoted, updated by the panels before k0), compact m x m.
  let w: Float64Array = Float64Array.from(s);
  for (let k0 = 0; k0 < n && !done; k0 += blockSize) {
    const m = n - k0;
    const k1 = Math.min(n, k0 + blockSize);
    for (let k = k0; k < k1; k++) {
      let q = k;
      for (let i = k + 1; i < n; i++) if (dd[i] > dd[q]) q = i;
      if (!(dd[q] > tol)) {
        done = true;
        break;
      }
      if (q !== k) swapPivot(w, m, k - k0, q - k0, l, n, k, q, perm, dd);
      const pivot = Math.sqrt(dd[k]);
      l[k * n + k] = pivot;
      const rowK = k * n;
      const colK = k - k0;
      for (let i = k + 1; i < n; i++) {
        const rowI = i * n;
        let sum = w[(i - k0) * m + colK];
        for (let p = k0; p < k; p++) sum -= l[rowI + p] * l[rowK + p];
        const lik = sum / pivot;
        l[rowI + k] = lik;
        dd[i] -= lik * lik;
      }
      rank = k + 1;
    }
    if (done || k1 >= n) break;
    // Next trailing block: W22 - L21 L21^T.
    const nb = k1 - k0;
    const mt = n - k1;
    const trailing = new Float64Array(mt * mt);
    const panel = new Float64Array(mt * nb);
    const panelT = new Float64Array(nb * mt);
    for (let i = 0; i < mt; i++) {
      trailing.set(w.subarray((nb + i) * m + nb, (nb + i) * m + m), i * mt);
      for (let p = 0; p < nb; p++) {
        const x = l[(k1 + i) * n + k0 + p];
        panel[i * nb + p] = x;
        panelT[p * mt + i] = x;
      }
    }
    w = await mm.mulSub(trailing, panel, panelT, mt, nb, mt);
  }
  // Undo the pivoting so that S ~= F F^T with F's rows in the caller's order.
  const factor = new Float64Array(n * rank);
  const lower = new Float64Array(n * rank);
  for (let i = 0; i < n; i++) {
    for (let c = 0; c < rank; c++) {
      factor[perm[i] * rank + c] = l[i * n + c];
      lower[i * rank + c] = l[i * n + c];
    }
  }
  return { factor, lower, perm, rank };
}

/** Symmetric swap of pivots k and q: rows/columns a, b of the compact trailing block, rows of L, perm, dd. */
function swapPivot(
  w: Float64Array,
  m: number,
  a: number,
  b: number,
  l: Float64Array,
  n: number,
  k: number,
  q: number,
  perm: Int32Array,
  dd: Float64Array,
): void {
  for (let j = 0; j < m; j++) {
    const t = w[a * m + j];
    w[a * m + j] = w[b * m + j];
    w[b * m + j] = t;
  }
  for (let i = 0; i < m; i++) {
    const t = w[i * m + a];
    w[i * m + a] = w[i * m + b];
    w[i * m + b] = t;
  }
  for (let p = 0; p < k; p++) {
    const t = l[k * n + p];
    l[k * n + p] = l[q * n + p];
    l[q * n + p] = t;
  }
  let t = perm[k];
  perm[k] = perm[q];
  perm[q] = t;
  t = dd[k];
  dd[k] = dd[q];
  dd[q] = t;
}

/** Eigenvalues (ascending) of the symmetric n x n matrix `a` (only read). */
export async function symmetricEigenvalues(a: Float64Array, n: number, mm: MatMul, bandwidth = 8, panelsPerUpdate = 8): Promise<Float64Array> {
  if (n === 0) return new Float64Array(0);
  // Small matrices: the bulge chase with b = n - 1 is plain Householder tridiagonalisation.
  const b = n > 4 * bandwidth ? bandwidth : Math.max(1, n - 1);
  const band = b < n - 1 ? await reduceToBand(a, n, b, mm, panelsPerUpdate) : Float64Array.from(a);
  const { diag, offDiag } = bandToTridiagonal(band, n, b);
  return tridiagonalEigenvalues(diag, offDiag);
}

/**
 * Householder reflector that maps x = (x0, x1..) to (beta, 0..): H = I - tau v v^T with v[0] = 1.
 * Writes v[1..] into `v` (v[0] = 1) and returns [tau, beta]; tau = 0 when x is already reduced.
 */
function householder(x: Float64Array, len: number, v: Float64Array): [number, number] {
  let sigma = 0;
  for (let i = 1; i < len; i++) sigma += x[i] * x[i];
  v[0] = 1;
  if (sigma === 0) {
    for (let i = 1; i < len; i++) v[i] = 0;
    return [0, x[0]];
  }
  const x0 = x[0];
  const mu = Math.sqrt(x0 * x0 + sigma);
  const beta = x0 <= 0 ? mu : -mu;
  const v0 = x0 - beta;
  for (let i = 1; i < len; i++) v[i] = x[i] / v0;
  return [(beta - x0) / beta, beta];
}

/**
 * Full symmetric -> symmetric band (semi-bandwidth b) with the same eigenvalues. Panel by panel: QR of the
 * b columns below the band gives Q = I - V T V^T (compact WY), and the trailing block becomes
 * Q^T B Q = B - V W^T - W V^T with W = X - V (T^T V^T X) / 2, X = B V T. As in LAPACK's dsytrd, the
 * rank-2b updates of `panelsPerUpdate` panels are deferred and applied in one matrix product; in between,
 * the entries a panel needs are corrected on the fly.
 */
async function reduceToBand(a: Float64Array, n: number, b: number, mm: MatMul, panelsPerUpdate = 4): Promise<Float64Array> {
  const band = new Float64Array(n * n);
  let cur: Float64Array = Float64Array.from(a); // A[s0.., s0..] as of the last applied update, compact ms x ms
  let s0 = 0;
  const maxW = panelsPerUpdate * b;
  for (;;) {
    const ms = n - s0;
    // Deferred update: current A = cur - vAcc wAcc^T - wAcc vAcc^T, both ms x maxW (first `width` columns used).
    const vAcc = new Float64Array(ms * maxW);
    const wAcc = new Float64Array(ms * maxW);
    let width = 0;
    const current = (i: number, j: number): number => {
      let x = cur[i * ms + j];
      const ri = i * maxW;
      const rj = j * maxW;
      for (let p = 0; p < width; p++) x -= vAcc[ri + p] * wAcc[rj + p] + wAcc[ri + p] * vAcc[rj + p];
      return x;
    };
    let off = 0; // panel start, local to cur
    for (let panelIndex = 0; panelIndex < panelsPerUpdate; panelIndex++, off += b) {
      const mc = ms - off;
      const m = mc - b; // rows below the band in this panel
      if (m <= 1) {
        for (let i = 0; i < mc; i++) for (let j = 0; j < mc; j++) band[(s0 + off + i) * n + s0 + off + j] = current(off + i, off + j);
        return band;
      }
      const k0 = s0 + off;
      for (let i = 0; i < b; i++) for (let j = 0; j < b; j++) band[(k0 + i) * n + k0 + j] = current(off + i, off + j);
      // Rows below the band as products: U = [vAcc | wAcc] and Z = [wAcc | vAcc] on those rows, so the
      // deferred update of any block (rows R, columns C) is U_R Z_C^T.
      const u = new Float64Array(m * 2 * width);
      const zt = new Float64Array(2 * width * m);
      for (let i = 0; i < m; i++) {
        const r = (off + b + i) * maxW;
        for (let p = 0; p < width; p++) {
          u[i * 2 * width + p] = vAcc[r + p];
          u[i * 2 * width + width + p] = wAcc[r + p];
          zt[p * m + i] = wAcc[r + p];
          zt[(width + p) * m + i] = vAcc[r + p];
        }
      }
      let panel: Float64Array = new Float64Array(m * b);
      for (let i = 0; i < m; i++) panel.set(cur.subarray((off + b + i) * ms + off, (off + b + i) * ms + off + b), i * b);
      if (width > 0) {
        const zPanelT = new Float64Array(2 * width * b); // Z of the panel's columns, transposed
        for (let c = 0; c < b; c++) {
          const r = (off + c) * maxW;
          for (let p = 0; p < width; p++) {
            zPanelT[p * b + c] = wAcc[r + p];
            zPanelT[(width + p) * b + c] = vAcc[r + p];
          }
        }
        panel = await mm.mulSub(panel, u, zPanelT, m, 2 * width, b);
      }
      const { v, tau } = householderQR(panel, m, b);
      // R (upper trapezoid of the panel) is the off-diagonal part of the band.
      for (let i = 0; i < Math.min(m, b); i++) {
        for (let c = i; c < b; c++) {
          const r = panel[i * b + c];
          band[(k0 + b + i) * n + k0 + c] = r;
          band[(k0 + c) * n + k0 + b + i] = r;
        }
      }
      const tMat = compactWyT(v, tau, m, b);
      // B V with B the current trailing block: stale product, then the deferred-update correction.
      const vPad = new Float64Array(ms * b);
      vPad.set(v, (off + b) * b);
      const bvAll = await mm.mul(cur, vPad, ms, ms, b);
      let bv: Float64Array = bvAll.slice((off + b) * b, ms * b);
      if (width > 0) {
        // (cur - U Z^T) V = cur V - U (Z^T V)
        const ztv = await mm.mul(zt, v, 2 * width, m, b);
        bv = await mm.mulSub(bv, u, ztv, m, 2 * width, b);
      }
      const xMat = smallMul(bv, tMat, m, b, b); // X = B V T
      const vtx = new Float64Array(b * b); // V^T X
      for (let i = 0; i < m; i++) {
        for (let p = 0; p < b; p++) {
          const vip = v[i * b + p];
          if (vip === 0) continue;
          for (let q = 0; q < b; q++) vtx[p * b + q] += vip * xMat[i * b + q];
        }
      }
      const tT = new Float64Array(b * b);
      for (let i = 0; i < b; i++) for (let j = 0; j < b; j++) tT[i * b + j] = tMat[j * b + i];
      const vs = smallMul(v, smallMul(tT, vtx, b, b, b), m, b, b);
      for (let i = 0; i < m; i++) {
        const r = (off + b + i) * maxW + width;
        for (let p = 0; p < b; p++) {
          vAcc[r + p] = v[i * b + p];
          wAcc[r + p] = xMat[i * b + p] - 0.5 * vs[i * b + p];
        }
      }
      width += b;
    }
    // Apply the deferred update to what remains: cur[off.., off..] - [V W] [W V]^T.
    const mt = ms - off;
    const trailing = new Float64Array(mt * mt);
    for (let i = 0; i < mt; i++) trailing.set(cur.subarray((off + i) * ms + off, (off + i) * ms + ms), i * mt);
    const u = new Float64Array(mt * 2 * width);
    const zt = new Float64Array(2 * width * mt);
    for (let i = 0; i < mt; i++) {
      const r = (off + i) * maxW;
      for (let p = 0; p < width; p++) {
        u[i * 2 * width + p] = vAcc[r + p];
        u[i * 2 * width + width + p] = wAcc[r + p];
        zt[p * mt + i] = wAcc[r + p];
        zt[(width + p) * mt + i] = vAcc[r + p];
      }
    }
    cur = await mm.mulSub(trailing, u, zt, mt, 2 * width, mt);
    s0 += off;
  }
}

/** Householder QR of the m x b row-major `panel` in place (R on and above the diagonal, zeros below). */
function householderQR(panel: Float64Array, m: number, b: number): { v: Float64Array; tau: Float64Array } {
  const v = new Float64Array(m * b); // reflectors as columns, v[c][c] = 1
  const tau = new Float64Array(b);
  const x = new Float64Array(m);
  const hv = new Float64Array(m);
  for (let c = 0; c < Math.min(b, m - 1); c++) {
    const len = m - c;
    for (let i = 0; i < len; i++) x[i] = panel[(c + i) * b + c];
    const [t, beta] = householder(x, len, hv);
    tau[c] = t;
    for (let i = 0; i < len; i++) v[(c + i) * b + c] = hv[i];
    panel[c * b + c] = beta;
    for (let i = 1; i < len; i++) panel[(c + i) * b + c] = 0;
    if (t === 0) continue;
    for (let q = c + 1; q < b; q++) {
      let s = 0;
      for (let i = 0; i < len; i++) s += hv[i] * panel[(c + i) * b + q];
      s *= t;
      for (let i = 0; i < len; i++) panel[(c + i) * b + q] -= s * hv[i];
    }
  }
  return { v, tau };
}

/** T of the compact WY form Q = I - V T V^T: T[0:c, c] = -tau_c T[0:c, 0:c] (V[:, 0:c]^T v_c). */
function compactWyT(v: Float64Array, tau: Float64Array, m: number, b: number): Float64Array {
  const tMat = new Float64Array(b * b);
  const vtv = new Float64Array(b);
  for (let c = 0; c < b; c++) {
    tMat[c * b + c] = tau[c];
    if (tau[c] === 0) continue;
    for (let p = 0; p < c; p++) {
      let s = 0;
      for (let i = c; i < m; i++) s += v[i * b + p] * v[i * b + c];
      vtv[p] = s;
    }
    for (let r = 0; r < c; r++) {
      let s = 0;
      for (let p = r; p < c; p++) s += tMat[r * b + p] * vtv[p];
      tMat[r * b + c] = -tau[c] * s;
    }
  }
  return tMat;
}

/** Small dense product in JavaScript (panel-sized operands). */
function smallMul(a: Float64Array, b: Float64Array, m: number, k: number, n: number): Float64Array {
  const out = new Float64Array(m * n);
  for (let i = 0; i < m; i++) {
    for (let p = 0; p < k; p++) {
      const f = a[i * k + p];
      if (f === 0) continue;
      for (let j = 0; j < n; j++) out[i * n + j] += f * b[p * n + j];
    }
  }
  return out;
}

/**
 * Symmetric band (semi-bandwidth b, dense storage, destroyed) -> tridiagonal, by Householder bulge chasing:
 * sweep j zeroes column j below the subdiagonal with a reflector on rows j+1..j+b; that reflector fills a
 * bulge b rows further down, whose first column the next reflector zeroes, and so on to the bottom. The
 * leftover bulge columns are zeroed by the following sweeps. Every reflector on rows r0..r1 only touches
 * columns r0-b..r1+b (checked by the tests against dense tridiagonalisation).
 */
export function bandToTridiagonal(a: Float64Array, n: number, b: number): { diag: Float64Array; offDiag: Float64Array } {
  const v = new Float64Array(b + 1);
  const x = new Float64Array(b + 1);
  const s = new Float64Array(n);
  for (let j = 0; j < n - 2; j++) {
    let col = j;
    let r0 = j + 1;
    let r1 = Math.min(j + b, n - 1);
    while (r1 > r0) {
      const len = r1 - r0 + 1;
      for (let i = 0; i < len; i++) x[i] = a[(r0 + i) * n + col];
      const [tau, beta] = householder(x, len, v);
      if (tau !== 0) {
        const cLo = Math.max(0, r0 - b);
        const cHi = Math.min(n - 1, r1 + b);
        // Left: rows r0..r1 <- H rows.
        for (let c = cLo; c <= cHi; c++) s[c] = 0;
        for (let i = 0; i < len; i++) {
          const vi = v[i];
          const row = (r0 + i) * n;
          for (let c = cLo; c <= cHi; c++) s[c] += vi * a[row + c];
        }
        for (let i = 0; i < len; i++) {
          const f = tau * v[i];
          const row = (r0 + i) * n;
          for (let c = cLo; c <= cHi; c++) a[row + c] -= f * s[c];
        }
        // Right: only the diagonal block needs H from both sides; the rest of columns r0..r1 is the
        // mirror image of the rows just updated (the matrix stays symmetric).
        for (let c = r0; c <= r1; c++) {
          const row = c * n + r0;
          let t = 0;
          for (let i = 0; i < len; i++) t += a[row + i] * v[i];
          t *= tau;
          for (let i = 0; i < len; i++) a[row + i] -= t * v[i];
        }
        for (let i = 0; i < len; i++) {
          const r = r0 + i;
          for (let c = cLo; c < r0; c++) a[c * n + r] = a[r * n + c];
          for (let c = r1 + 1; c <= cHi; c++) a[c * n + r] = a[r * n + c];
        }
        // The annihilated column is exactly (beta, 0, ...): store it exactly, rounding-free.
        a[r0 * n + col] = beta;
        a[col * n + r0] = beta;
        for (let i = 1; i < len; i++) {
          a[(r0 + i) * n + col] = 0;
          a[col * n + r0 + i] = 0;
        }
      }
      col = r0;
      r0 = r1 + 1;
      r1 = Math.min(r1 + b, n - 1);
    }
  }
  const diag = new Float64Array(n);
  const offDiag = new Float64Array(Math.max(0, n - 1));
  for (let i = 0; i < n; i++) diag[i] = a[i * n + i];
  for (let i = 0; i + 1 < n; i++) offDiag[i] = a[(i + 1) * n + i];
  return { diag, offDiag };
}

/** Eigenvalues (ascending) of the symmetric tridiagonal matrix by implicit QL with Wilkinson shifts. */
export function tridiagonalEigenvalues(diag: Float64Array, offDiag: Float64Array): Float64Array {
  const n = diag.length;
  const d = Float64Array.from(diag);
  const e = new Float64Array(n);
  e.set(offDiag.subarray(0, Math.max(0, n - 1)));
  for (let l = 0; l < n; l++) {
    for (let iter = 0; ; iter++) {
      let m = l;
      while (m < n - 1 && Math.abs(e[m]) > EPS * (Math.abs(d[m]) + Math.abs(d[m + 1]))) m++;
      if (m === l) break;
      if (iter >= 100) throw new Error(`tridiagonal QL did not converge at index ${l}; the matrix has non-finite entries?`);
      // Wilkinson shift from the leading 2x2 block.
      let g = (d[l + 1] - d[l]) / (2 * e[l]);
      let r = Math.hypot(g, 1);
      g = d[m] - d[l] + e[l] / (g + (g >= 0 ? r : -r));
      let s = 1;
      let c = 1;
      let p = 0;
      let underflow = false;
      for (let i = m - 1; i >= l; i--) {
        const f = s * e[i];
        const bb = c * e[i];
        r = Math.hypot(f, g);
        e[i + 1] = r;
        if (r === 0) {
          // Deflation inside the sweep: recover and restart.
          d[i + 1] -= p;
          e[m] = 0;
          underflow = true;
          break;
        }
        s = f / r;
        c = g / r;
        g = d[i + 1] - p;
        r = (d[i] - g) * s + 2 * c * bb;
        p = s * r;
        d[i + 1] = g + p;
        g = c * r - bb;
      }
      if (underflow) continue;
      d[l] -= p;
      e[l] = g;
      e[m] = 0;
    }
  }
  return d.sort();
}
