/**
 * The MNIST classifier's network, written with plain tfjs ops (no tfjs-layers), so its weights are a
 * handful of named float32 arrays that any framework can load:
 *
 *   input  [N, 28, 28, 1]  gray level / 255, in [0, 1] (white digit on black, as MNIST)
 *   conv1  3x3, 32 filters, stride 1, 'same' padding, ReLU  -> maxpool 2x2 -> [N, 14, 14, 32]
 *   conv2  3x3, 64 filters, stride 1, 'same' padding, ReLU  -> maxpool 2x2 -> [N, 7, 7, 64]
 *   flatten in (y, x, channel) order                                        -> [N, 3136]
 *   fc1    3136 -> 128, ReLU   = the penultimate "features" used by FID-MNIST
 *   fc2    128 -> 10           = logits (softmax gives class probabilities)
 *
 * Layouts: conv kernels are [kh, kw, in, out] (TensorFlow's HWIO), dense kernels [in, out].
 */
import { tf } from '@causalfusion/backend';
import type { Rng } from '@causalfusion/rng';

export const IMAGE_SIZE = 28;
export const FEATURE_DIM = 128;
export const NUM_CLASSES = 10;

/** Name and shape of every weight, in the order they are stored. */
export const WEIGHT_SHAPES: Readonly<Record<string, readonly number[]>> = {
  'conv1.kernel': [3, 3, 1, 32],
  'conv1.bias': [32],
  'conv2.kernel': [3, 3, 32, 64],
  'conv2.bias': [64],
  'fc1.kernel': [7 * 7 * 64, FEATURE_DIM],
  'fc1.bias': [FEATURE_DIM],
  'fc2.kernel': [FEATURE_DIM, NUM_CLASSES],
  'fc2.bias': [NUM_CLASSES],
};

/** The weights as tfjs tensors, keyed as in {@link WEIGHT_SHAPES}. */
export type Weights = Record<string, tf.Tensor>;

/** He-uniform kernels (fan-in), zero biases, drawn from a seeded platform-independent generator. */
export function initWeights(rng: Rng): Record<string, Float32Array> {
  const out: Record<string, Float32Array> = {};
  for (const [name, shape] of Object.entries(WEIGHT_SHAPES)) {
    const size = shape.reduce((a, b) => a * b, 1);
    const values = new Float32Array(size);
    if (name.endsWith('.kernel')) {
      const fanIn = shape.slice(0, -1).reduce((a, b) => a * b, 1);
      const limit = Math.sqrt(6 / fanIn);
      for (let i = 0; i < size; i++) values[i] = rng.uniform(-limit, limit);
    }
    out[name] = values;
  }
  return out;
}

/*
 * Training ops. Their values equal the inference path; only the gradients are hand-written, because on
 * the wasm backend the stock ones are slow or missing: there is no Conv2DBackpropFilter kernel, matMul
 * with transpose flags is ~10x slower than an explicit transpose, and MaxPoolGrad and broadcast-sum
 * reductions are slow. Each gradient below uses only fast kernels (conv2d, matMul, transpose, avgPool,
 * resizeNearestNeighbor, elementwise) and equals tfjs's own gradient (max pooling: wherever the
 * window maximum is unique; see maxPool2x2).
 */

type Gradient = { value: tf.Tensor; gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => tf.Tensor | tf.Tensor[] };

/** tf.customGrad with typed arguments (tfjs types them all as `Tensor | GradSaveFunc`). */
function withGradient<A extends tf.Tensor[]>(f: (...args: [...A, tf.GradSaveFunc]) => Gradient): (...args: A) => tf.Tensor {
  return tf.customGrad(f as unknown as Parameters<typeof tf.customGrad>[0]) as (...args: A) => tf.Tensor;
}

/** y = conv2d(x, k, stride 1, 'same') + b for a 3x3 kernel k [3, 3, in, out]. */
const convSame3x3 = withGradient<[tf.Tensor, tf.Tensor, tf.Tensor]>((x, k, b, save) => {
  save([x, k]);
  return {
    value: tf.add(tf.conv2d(x as tf.Tensor4D, k as tf.Tensor4D, 1, 'same'), b),
    gradFunc: (dy, saved) => {
      const [input, kernel] = saved as [tf.Tensor4D, tf.Tensor4D];
      const g = dy as tf.Tensor4D;
      const [n, h, w] = input.shape;
      const out = kernel.shape[3];
      // dx: a 'same' convolution of dy with the kernel flipped in space and transposed in channels.
      const dx = tf.conv2d(g, tf.transpose(tf.reverse(kernel, [0, 1]), [0, 1, 3, 2]), 1, 'same');
      // dk[a, b, c, o] = sum over n, y, x of xpad[n, y+a, x+b, c] * dy[n, y, x, o]: a 'valid'
      // convolution of the padded input (batch moved to channels) with dy as the filter.
      const padded = tf.pad(input, [
        [0, 0],
        [1, 1],
        [1, 1],
        [0, 0],
      ]);
      const dk = tf.transpose(
        tf.conv2d(tf.transpose(padded, [3, 1, 2, 0]) as tf.Tensor4D, tf.transpose(g, [1, 2, 0, 3]) as tf.Tensor4D, 1, 'valid'),
        [1, 2, 0, 3],
      );
      // db: column sums of dy, as a [1, n*h*w] x [n*h*w, out] product.
      const db = tf.reshape(tf.matMul(tf.ones([1, n * h * w]), tf.reshape(g, [n * h * w, out])), [out]);
      return [dx, dk, db];
    },
  };
});

/** y = x w + b for x [n, in], w [in, out]. */
const dense = withGradient<[tf.Tensor, tf.Tensor, tf.Tensor]>((x, w, b, save) => {
  save([x, w]);
  return {
    value: tf.add(tf.matMul(x as tf.Tensor2D, w as tf.Tensor2D), b),
    gradFunc: (dy, saved) => {
      const [input, weight] = saved as [tf.Tensor2D, tf.Tensor2D];
      const g = dy as tf.Tensor2D;
      return [tf.matMul(g, tf.transpose(weight)), tf.matMul(tf.transpose(input), g), tf.reshape(tf.matMul(tf.ones([1, g.shape[0]]), g), [g.shape[1]])];
    },
  };
});

const relu = withGradient<[tf.Tensor]>((x, save) => {
  const y = tf.relu(x);
  save([y]);
  return { value: y, gradFunc: (dy, saved) => tf.mul(dy, tf.step(saved[0])) };
});

/**
 * 2x2 max pooling, stride 2. Each window's gradient is shared equally by the inputs equal to its
 * maximum. Ties are common (flat ink regions give equal conv outputs); tfjs's MaxPoolGrad gives all to
 * the first, which needs per-position slices that are slow on wasm. Both are valid subgradients and
 * agree wherever the maximum is unique.
 */
const maxPool2x2 = withGradient<[tf.Tensor]>((x, save) => {
  const y = tf.maxPool(x as tf.Tensor4D, 2, 2, 'valid');
  save([x, y]);
  return {
    value: y,
    gradFunc: (dy, saved) => {
      const [input, pooled] = saved as [tf.Tensor4D, tf.Tensor4D];
      const up = (t: tf.Tensor) => tf.image.resizeNearestNeighbor(t as tf.Tensor4D, [input.shape[1], input.shape[2]]);
      const isMax = tf.cast(tf.equal(input, up(pooled)), 'float32');
      const ties = tf.mul(tf.avgPool(isMax as tf.Tensor4D, 2, 2, 'valid'), 4); // >= 1 in every window
      return tf.mul(up(tf.div(dy, ties)), isMax);
    },
  };
});

/**
 * Forward pass from [N, 28, 28, 1] inputs in [0, 1] to the 128-d features and the 10 logits.
 * `forTraining` computes the same values through the ops above, which have fast gradients.
 */
export function forward(weights: Weights, x: tf.Tensor4D, forTraining = false): { features: tf.Tensor2D; logits: tf.Tensor2D } {
  const w = weights;
  const n = x.shape[0];
  if (forTraining) {
    const block = (input: tf.Tensor, layer: string) => maxPool2x2(relu(convSame3x3(input, w[`${layer}.kernel`], w[`${layer}.bias`])));
    const flat = tf.reshape(block(block(x, 'conv1'), 'conv2'), [n, 7 * 7 * 64]);
    const features = relu(dense(flat, w['fc1.kernel'], w['fc1.bias'])) as tf.Tensor2D;
    return { features, logits: dense(features, w['fc2.kernel'], w['fc2.bias']) as tf.Tensor2D };
  }
  const block = (input: tf.Tensor4D, layer: string) =>
    tf.maxPool(tf.relu(tf.add(tf.conv2d(input, w[`${layer}.kernel`] as tf.Tensor4D, 1, 'same'), w[`${layer}.bias`])) as tf.Tensor4D, 2, 2, 'valid');
  const flat = tf.reshape(block(block(x, 'conv1'), 'conv2'), [n, 7 * 7 * 64]) as tf.Tensor2D;
  const features = tf.relu(tf.add(tf.matMul(flat, w['fc1.kernel'] as tf.Tensor2D), w['fc1.bias'])) as tf.Tensor2D;
  const logits = tf.add(tf.matMul(features, w['fc2.kernel'] as tf.Tensor2D), w['fc2.bias']) as tf.Tensor2D;
  return { features, logits };
}

/** uint8 gray images (N*28*28) -> float input tensor [N, 28, 28, 1] in [0, 1]. */
export function toInput(images: Uint8Array, count: number): tf.Tensor4D {
  const scaled = new Float32Array(count * IMAGE_SIZE * IMAGE_SIZE);
  for (let i = 0; i < scaled.length; i++) scaled[i] = images[i] / 255;
  return tf.tensor4d(scaled, [count, IMAGE_SIZE, IMAGE_SIZE, 1]);
}
