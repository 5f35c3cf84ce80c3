/**
 * The few tensor ops the transformer is built from, written for speed on tfjs-wasm (measured there):
 * - `matMul` never uses transpose flags (they leave XNNPACK for a naive loop), not even in its
 *   gradient: it transposes explicitly and multiplies plain operands;
 * - attention's batched products run as depthwise convolutions (`convBatchMatMul`), because wasm's
 *   batched matMul is a naive loop while its depthwise convolution is an XNNPACK grouped GEMM;
 * - LayerNorm and tanh-GELU have hand-written gradients (one formula instead of a chain of autodiff
 *   ops), and GELU uses 0.5 (1 + tanh z) = sigmoid(2z) since wasm's tanh is slow.
 */
import { tf } from '@causalfusion/backend';

type Tensor = tf.Tensor;

function transposeLast2(x: Tensor): Tensor {
  return x.rank === 2 ? tf.transpose(x) : tf.transpose(x, [0, 2, 1]);
}

/** a @ b for 2-D or 3-D (equal batch) operands, with a gradient that also avoids transpose flags. */
export const matMul: (a: Tensor, b: Tensor) => Tensor = tf.customGrad(((a: Tensor, b: Tensor, save: tf.GradSaveFunc) => {
  // tfjs disposes forward intermediates before the backward pass unless they are saved, and `save`
  // copies. A variable (a weight) lives on, so it is read directly instead of being copied.
  const keepB = b instanceof tf.Variable;
  save(keepB ? [a] : [a, b]);
  return {
    value: tf.matMul(a as tf.Tensor2D, b as tf.Tensor2D),
    gradFunc: (dy: Tensor, saved: Tensor[]) => {
      const sa = saved[0];
      const sb = keepB ? b : saved[1];
      const da = tf.matMul(dy as tf.Tensor2D, transposeLast2(sb) as tf.Tensor2D);
      // dB = a^T dy. XNNPACK packs the right operand on every call, so for a 2-D product with a wider dy
      // than a (e.g. a linear layer that widens) compute (dy^T a)^T instead, which packs the smaller a.
      if (sa.rank === 2 && (dy.shape[1] as number) > (sa.shape[1] as number)) {
        return [da, tf.transpose(tf.matMul(tf.transpose(dy) as tf.Tensor2D, sa as tf.Tensor2D))];
      }
      return [da, tf.matMul(transposeLast2(sa) as tf.Tensor2D, dy as tf.Tensor2D)];
    },
  };
}) as never);

function depthwise(x: Tensor, f: Tensor): Tensor {
  const [I, K, B] = x.shape as [number, number, number];
  const J = f.shape[2] as number;
  const o = tf.depthwiseConv2d(tf.reshape(x, [1, I, K, B]) as tf.Tensor4D, tf.reshape(f, [1, K, B, J]) as tf.Tensor4D, 1, 'valid');
  return tf.reshape(o, [I, B, J]);
}

/**
 * A batched matMul as ONE depthwise convolution, in the layouts the convolution wants:
 * x [I, K, B] and f [K, B, J] give out [I, B, J] with out[i, b, j] = sum_k x[i, k, b] f[k, b, j],
 * i.e. for every batch element b the product X_b [I, K] @ F_b [K, J].
 *
 * Why: tfjs-wasm runs a batched matMul through a naive loop (~1.5 GFLOPS), while its depthwise
 * convolution is an XNNPACK grouped GEMM (channel = batch element, filter width = K), about 3x faster
 * on the attention shapes, even counting the transposes into these layouts.
 */
export const convBatchMatMul: (x: Tensor, f: Tensor) => Tensor = tf.customGrad(((x: Tensor, f: Tensor, save: tf.GradSaveFunc) => {
  save([x, f]);
  return {
    value: depthwise(x, f),
    gradFunc: (dy: Tensor, saved: Tensor[]) => {
      const [sx, sf] = saved;
      // dX_b = dY_b [I, J] @ F_b^T [J, K]: input dy as [I, J, B], filter f as [J, B, K], out [I, B, K] -> [I, K, B]
      const dx = tf.transpose(depthwise(tf.transpose(dy, [0, 2, 1]), tf.transpose(sf, [2, 1, 0])), [0, 2, 1]);
      // dF_b = X_b^T [K, I] @ dY_b [I, J]: input x as [K, I, B], filter dy as it is [I, B, J], out [K, B, J]
      const df = depthwise(tf.transpose(sx, [1, 0, 2]), dy);
      return [dx, df];
    },
  };
}) as never);

/** y = x @ W + b, with W stored [in, out] (the transpose of PyTorch's nn.Linear weight). */
export function linear(x: Tensor, weight: Tensor, bias: Tensor | null): Tensor {
  const y = matMul(x, weight);
  return bias ? tf.add(y, bias) : y;
}

/** (x - mean) / sqrt(var + eps) over the last axis, with the closed-form gradient. */
const normalize: (x: Tensor, eps: Tensor) => Tensor = tf.customGrad(((x: Tensor, eps: Tensor, save: tf.GradSaveFunc) => {
  const mean = tf.mean(x, -1, true);
  const centered = tf.sub(x, mean);
  const variance = tf.mean(tf.square(centered), -1, true);
  const rstd = tf.rsqrt(tf.add(variance, eps));
  const xhat = tf.mul(centered, rstd);
  save([xhat, rstd]);
  return {
    value: xhat,
    gradFunc: (dy: Tensor, saved: Tensor[]) => {
      const [sxhat, srstd] = saved;
      // dx = rstd * (dy - mean(dy) - xhat * mean(dy * xhat))
      const m1 = tf.mean(dy, -1, true);
      const m2 = tf.mean(tf.mul(dy, sxhat), -1, true);
      return [tf.mul(srstd, tf.sub(tf.sub(dy, m1), tf.mul(sxhat, m2))), tf.zerosLike(eps)];
    },
  };
}) as never);

const epsCache = new Map<number, Tensor>();

/** nn.LayerNorm over the last axis (PyTorch's eps 1e-5, biased variance). */
export function layerNorm(x: Tensor, weight: Tensor, bias: Tensor, eps = 1e-5): Tensor {
  let e = epsCache.get(eps);
  if (!e || e.isDisposed) {
    e = tf.keep(tf.scalar(eps));
    epsCache.set(eps, e);
  }
  return tf.add(tf.mul(normalize(x, e), weight), bias);
}

const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);

/**
 * nn.GELU(approximate="tanh"): 0.5 x (1 + tanh(z)), z = sqrt(2/pi) (x + 0.044715 x^3),
 * computed as x * sigmoid(2z).
 */
export const geluTanh: (x: Tensor) => Tensor = tf.customGrad(((x: Tensor, save: tf.GradSaveFunc) => {
  // 2z = x (a + b x^2) with a = 2 sqrt(2/pi), b = a * 0.044715
  const a = 2 * SQRT_2_OVER_PI;
  const b = a * 0.044715;
  const s = tf.sigmoid(tf.mul(x, tf.add(tf.mul(tf.square(x), b), a)));
  save([x, s]); // x^2 is recomputed in the backward pass rather than saved (each save is a copy)
  return {
    value: tf.mul(x, s),
    gradFunc: (dy: Tensor, saved: Tensor[]) => {
      const [sx, ss] = saved;
      // d/dx [x s(2z)] = s + x s (1 - s) d(2z)/dx, d(2z)/dx = a + 3 b x^2
      const dz = tf.add(tf.mul(tf.square(sx), 3 * b), a);
      const ds = tf.mul(tf.mul(ss, tf.sub(1, ss)), tf.mul(sx, dz));
      return [tf.mul(dy, tf.add(ss, ds))];
    },
  };
}) as never);

/** nn.SiLU: x * sigmoid(x). */
export function silu(x: Tensor): Tensor {
  return tf.mul(x, tf.sigmoid(x));
}
