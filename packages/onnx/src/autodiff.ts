/**
 * Reverse-mode differentiation over ONNX graphs: the layer-level ops a transformer's training step is
 * made of (Linear, LayerNorm, masked softmax, tanh-GELU, SiLU, batched products, embedding rows,
 * reshapes, concat/split) each emit their forward nodes and record how to emit their gradient. After the
 * loss, `gradients()` walks the tape backwards and emits the backward pass as more nodes of the SAME
 * graph, so one onnxruntime `run` returns the loss and every parameter's gradient.
 *
 * onnxruntime-node's CPU build has no gradient kernels (SoftmaxGrad, LayerNormalizationGrad, ... are
 * compiled only into training builds), so every gradient here is written with standard opset-17 ops,
 * plus FusedMatMul / FastGelu from com.microsoft, which the inference build runs.
 *
 * Shapes may be dynamic (rows, tokens): the ops are told which axes broadcast instead of inferring it.
 * Each rule is tested against central finite differences (autodiff.test.ts).
 */
import { onnx } from 'onnx-proto';
import { attr, FLOAT, GraphBuilder } from './graph';

const MS = 'com.microsoft';
const GELU_C = Math.sqrt(2 / Math.PI);
const GELU_A = 0.044715;
const ZERO_FILL: onnx.IAttributeProto = { name: 'value', type: onnx.AttributeProto.AttributeType.TENSOR, t: { dims: [1], dataType: FLOAT, floatData: [0] } };

/** A recorded op: the tensors it produced and how to pass their gradients (null: none arrived) to its inputs. */
interface TapeEntry {
  outputs: string[];
  backward: (grads: (string | null)[]) => void;
}

export class GradGraph {
  readonly g: GraphBuilder;
  private readonly tape: TapeEntry[] = [];
  /** Tensors that depend on a differentiable input. */
  private readonly live = new Set<string>();
  /** Gradient contributions per tensor, summed when first read. */
  private readonly contributions = new Map<string, string[]>();

  constructor(g: GraphBuilder = new GraphBuilder(new Map(), null)) {
    this.g = g;
  }

  /** Mark a graph input as differentiable (a parameter). */
  param(name: string): string {
    this.live.add(name);
    return name;
  }

  needsGrad(name: string): boolean {
    return this.live.has(name);
  }

  private record(outputs: string[], inputs: string[], backward: TapeEntry['backward']): void {
    if (!inputs.some((i) => this.live.has(i))) return;
    for (const o of outputs) this.live.add(o);
    this.tape.push({ outputs, backward });
  }

  /** Add a gradient contribution to `name` (ignored for tensors no parameter flows into). */
  private accumulate(name: string, grad: string): void {
    if (!this.live.has(name)) return;
    const list = this.contributions.get(name);
    if (list) list.push(grad);
    else this.contributions.set(name, [grad]);
  }

  private summed(name: string): string | null {
    const parts = this.contributions.get(name);
    if (!parts) return null;
    return parts.length === 1 ? parts[0] : this.g.op('Sum', parts);
  }

  /**
   * Emit the backward pass of scalar `loss` and return the gradient of each of `params` (a tensor name;
   * null where the loss does not depend on it).
   */
  gradients(loss: string, params: string[]): Map<string, string | null> {
    this.accumulate(loss, this.g.scalar('grad.one', 1));
    for (let i = this.tape.length - 1; i >= 0; i--) {
      const entry = this.tape[i];
      const grads = entry.outputs.map((o) => this.summed(o));
      if (grads.some((x) => x !== null)) entry.backward(grads);
    }
    return new Map(params.map((p) => [p, this.summed(p)]));
  }

  // ---------------------------------------------------------------- helpers (no gradient of their own)

  private ints(values: number[]): string {
    return this.g.constant(`ints.${values.join('_')}`, values, 'int64');
  }

  private scalar(value: number): string {
    return this.g.scalar(`c.${value}`, value);
  }

  /** ReduceSum over `axes` (opset 13+: axes as an input). */
  reduceSum(x: string, axes: number[], keepdims: boolean): string {
    return this.g.op('ReduceSum', [x, this.ints(axes)], [attr.int('keepdims', keepdims ? 1 : 0)]);
  }

  private reduceMean(x: string, axes: number[]): string {
    // opset 17: ReduceMean still takes its axes as an attribute (ReduceSum moved them to an input in 13)
    return this.g.op('ReduceMean', [x], [attr.ints('axes', axes), attr.int('keepdims', 1)]);
  }

  private mul(a: string, b: string): string {
    return this.g.op('Mul', [a, b]);
  }

  /** Plain (non-differentiated) op, for inputs and constants. */
  op(opType: string, inputs: string[], attributes = [] as Parameters<GraphBuilder['op']>[2]): string {
    return this.g.op(opType, inputs, attributes);
  }

  // ---------------------------------------------------------------- differentiable ops

  /** y = x @ W + b for x [M, in], W [in, out] (training layout), b [out] or null: one Gemm. */
  linear(x: string, w: string, b: string | null): string {
    const y = this.g.op('Gemm', b ? [x, w, b] : [x, w]);
    this.record([y], [x, w, ...(b ? [b] : [])], ([g]) => {
      if (this.live.has(x)) this.accumulate(x, this.g.op('Gemm', [g!, w], [attr.int('transB', 1)]));
      if (this.live.has(w)) this.accumulate(w, this.g.op('Gemm', [x, g!], [attr.int('transA', 1)]));
      if (b && this.live.has(b)) this.accumulate(b, this.reduceSum(g!, [0], false));
    });
    return y;
  }

  /**
   * Batched product over the last two axes, C = A @ B or A @ B^T (`transB`), by com.microsoft's
   * FusedMatMul (no Transpose nodes): dA = g @ B^T or g @ B, dB = A^T @ g or g^T @ A.
   */
  matmul(a: string, b: string, transB = false): string {
    const fused = (x: string, y: string, tA: boolean, tB: boolean) =>
      this.g.opN('FusedMatMul', [x, y], 1, [attr.int('transA', tA ? 1 : 0), attr.int('transB', tB ? 1 : 0)], undefined, MS)[0];
    const c = transB ? fused(a, b, false, true) : this.g.op('MatMul', [a, b]);
    this.record([c], [a, b], ([g]) => {
      if (this.live.has(a)) this.accumulate(a, transB ? this.g.op('MatMul', [g!, b]) : fused(g!, b, false, true));
      if (this.live.has(b)) this.accumulate(b, transB ? fused(g!, a, true, false) : fused(a, g!, true, false));
    });
    return c;
  }

  /** a + b, same shape. */
  add(a: string, b: string): string {
    const y = this.g.op('Add', [a, b]);
    this.record([y], [a, b], ([g]) => {
      this.accumulate(a, g!);
      this.accumulate(b, g!);
    });
    return y;
  }

  /**
   * x + b where b broadcasts over `axes` of x (b's gradient is g summed over them; `keepdims` when b keeps
   * those axes as 1, e.g. [N, 1, D] added to [N, L, D]).
   */
  addBroadcast(x: string, b: string, axes: number[], keepdims: boolean): string {
    const y = this.g.op('Add', [x, b]);
    this.record([y], [x, b], ([g]) => {
      this.accumulate(x, g!);
      if (this.live.has(b)) this.accumulate(b, this.reduceSum(g!, axes, keepdims));
    });
    return y;
  }

  /** x * c for a constant c. */
  scale(x: string, c: number): string {
    const y = this.g.op('Mul', [x, this.scalar(c)]);
    this.record([y], [x], ([g]) => this.accumulate(x, this.g.op('Mul', [g!, this.scalar(c)])));
    return y;
  }

  /**
   * nn.LayerNorm over the last axis of x [M, W] (eps 1e-5). Backward from the saved mean and 1/std:
   * dx = invstd (dxh - mean(dxh) - xh mean(dxh xh)) with xh the normalized x and dxh = g w.
   */
  layerNorm(x: string, w: string, b: string, eps = 1e-5): string {
    const [y, mean, invStd] = this.g.opN('LayerNormalization', [x, w, b], 3, [attr.int('axis', -1), attr.float('epsilon', eps)]);
    this.record([y], [x, w, b], ([g]) => {
      const xh = this.mul(this.g.op('Sub', [x, mean]), invStd);
      if (this.live.has(w)) this.accumulate(w, this.reduceSum(this.mul(g!, xh), [0], false));
      if (this.live.has(b)) this.accumulate(b, this.reduceSum(g!, [0], false));
      if (this.live.has(x)) {
        const dxh = this.mul(g!, w);
        const centered = this.g.op('Sub', [dxh, this.reduceMean(dxh, [-1])]);
        const projected = this.mul(xh, this.reduceMean(this.mul(dxh, xh), [-1]));
        this.accumulate(x, this.mul(this.g.op('Sub', [centered, projected]), invStd));
      }
    });
    return y;
  }

  /** softmax(x + bias) over the last axis; bias (an additive mask, 0 / -inf) gets no gradient. dx = y (g - sum(g y)). */
  softmax(x: string, bias: string | null): string {
    const y = this.g.op('Softmax', [bias ? this.g.op('Add', [x, bias]) : x], [attr.int('axis', -1)]);
    this.record([y], [x], ([g]) => {
      const gy = this.mul(g!, y);
      this.accumulate(x, this.g.op('Sub', [gy, this.mul(y, this.reduceSum(gy, [-1], true))]));
    });
    return y;
  }

  /**
   * tanh-GELU, 0.5 x (1 + tanh(c (x + a x^3))), as one FastGelu kernel; its derivative
   * 0.5 (1 + t) + 0.5 x (1 - t^2) c (1 + 3 a x^2) recomputes t from x.
   */
  gelu(x: string): string {
    const y = this.g.opN('FastGelu', [x], 1, [], undefined, MS)[0];
    this.record([y], [x], ([g]) => {
      const x2 = this.mul(x, x);
      const inner = this.mul(x, this.g.op('Add', [this.mul(x2, this.scalar(GELU_A * GELU_C)), this.scalar(GELU_C)]));
      const t = this.g.op('Tanh', [inner]);
      const dInner = this.g.op('Add', [this.mul(x2, this.scalar(3 * GELU_A * GELU_C)), this.scalar(GELU_C)]);
      const sech2 = this.g.op('Sub', [this.scalar(1), this.mul(t, t)]);
      const left = this.mul(this.g.op('Add', [t, this.scalar(1)]), this.scalar(0.5));
      const right = this.mul(this.mul(this.mul(x, this.scalar(0.5)), sech2), dInner);
      this.accumulate(x, this.mul(g!, this.g.op('Add', [left, right])));
    });
    return y;
  }

  /** x sigmoid(x); derivative s (1 + x (1 - s)). */
  silu(x: string): string {
    const s = this.g.op('Sigmoid', [x]);
    const y = this.mul(x, s);
    this.record([y], [x], ([g]) => {
      const d = this.mul(s, this.g.op('Add', [this.scalar(1), this.mul(x, this.g.op('Sub', [this.scalar(1), s]))]));
      this.accumulate(x, this.mul(g!, d));
    });
    return y;
  }

  /** Reshape to `shape` (a constant list, 0 = keep, -1 = infer, or an int64 tensor name). */
  reshape(x: string, shape: number[] | string): string {
    const y = this.g.op('Reshape', [x, typeof shape === 'string' ? shape : this.ints(shape)]);
    this.record([y], [x], ([g]) => this.accumulate(x, this.g.op('Reshape', [g!, this.g.op('Shape', [x])])));
    return y;
  }

  transpose(x: string, perm: number[]): string {
    const y = this.g.op('Transpose', [x], [attr.ints('perm', perm)]);
    const inverse = perm.map((_, i) => perm.indexOf(i));
    this.record([y], [x], ([g]) => this.accumulate(x, this.g.op('Transpose', [g!], [attr.ints('perm', inverse)])));
    return y;
  }

  /** The length of `x` along `axis`, as an int64 [1] tensor. */
  private lengthOf(x: string, axis: number): string {
    return this.g.op('Shape', [x], [attr.int('start', axis), attr.int('end', axis + 1)]);
  }

  /** Concat along a non-negative `axis`; the gradient is split back by the parts' lengths. */
  concat(parts: string[], axis: number): string {
    const y = this.g.op('Concat', parts, [attr.int('axis', axis)]);
    this.record([y], parts, ([g]) => {
      const sizes = this.g.op(
        'Concat',
        parts.map((p) => this.lengthOf(p, axis)),
        [attr.int('axis', 0)],
      );
      const pieces = this.g.opN('Split', [g!, sizes], parts.length, [attr.int('axis', axis)]);
      parts.forEach((p, i) => this.accumulate(p, pieces[i]));
    });
    return y;
  }

  /**
   * Split along a non-negative `axis` into parts of `sizes` (an int64 tensor name or constants). The
   * gradient concatenates the parts' gradients, zeros where a part got none.
   */
  split(x: string, axis: number, sizes: number[] | string, count: number): string[] {
    const ys = this.g.opN('Split', [x, typeof sizes === 'string' ? sizes : this.ints(sizes)], count, [attr.int('axis', axis)]);
    this.record(ys, [x], (grads) => {
      const filled = grads.map((gi, i) => gi ?? this.g.op('ConstantOfShape', [this.g.op('Shape', [ys[i]])], [ZERO_FILL]));
      this.accumulate(x, this.g.op('Concat', filled, [attr.int('axis', axis)]));
    });
    return ys;
  }

  /**
   * Rows of `table` [R, W] at int64 `ids` (any shape) -> [...ids, W]. Gradient: onehot(ids)^T @ g, a
   * product rather than a scatter (deterministic, and Gemm-fast for the small tables here).
   */
  gather(table: string, ids: string, rows: number, width: number): string {
    const y = this.g.op('Gather', [table, ids], [attr.int('axis', 0)]);
    this.record([y], [table], ([g]) => {
      const flatIds = this.g.op('Reshape', [ids, this.ints([-1])]);
      const oneHot = this.g.op(
        'OneHot',
        [flatIds, this.g.constant(`depth.${rows}`, [rows], 'int64'), this.g.constant('onehot.values', [0, 1], 'float')],
        [attr.int('axis', -1)],
      );
      const g2 = this.g.op('Reshape', [g!, this.ints([-1, width])]);
      this.accumulate(table, this.g.op('Gemm', [oneHot, g2], [attr.int('transA', 1)]));
    });
    return y;
  }

  /** sum(x * w) over all elements, for w broadcastable to x (no gradient to w). */
  weightedSum(x: string, w: string): string {
    const y = this.g.op('ReduceSum', [this.mul(x, w)], [attr.int('keepdims', 0)]);
    this.record([y], [x], ([g]) => this.accumulate(x, this.mul(g!, w)));
    return y;
  }

  /** sum(w * (target - pred)^2) for pred, target [M, d] and w broadcastable to them (no gradient to target or w). */
  weightedSquaredError(pred: string, target: string, w: string): string {
    const diff = this.g.op('Sub', [target, pred]);
    const y = this.g.op('ReduceSum', [this.mul(w, this.mul(diff, diff))], [attr.int('keepdims', 0)]);
    this.record([y], [pred], ([g]) => {
      this.accumulate(pred, this.mul(g!, this.mul(this.mul(w, diff), this.scalar(-2))));
    });
    return y;
  }

  /**
   * sum(w * cross_entropy(logits, labels)) for logits [M, V], int64 labels [M] and weights w [M]
   * (0 for positions that do not count). Gradient: w (softmax(logits) - onehot(labels)).
   */
  weightedCrossEntropy(logits: string, labels: string, w: string, vocab: number): string {
    const logp = this.g.op('LogSoftmax', [logits], [attr.int('axis', -1)]);
    const oneHot = this.g.op(
      'OneHot',
      [labels, this.g.constant(`depth.${vocab}`, [vocab], 'int64'), this.g.constant('onehot.values', [0, 1], 'float')],
      [attr.int('axis', -1)],
    );
    const picked = this.reduceSum(this.mul(logp, oneHot), [-1], false); // [M]
    const y = this.g.op('Neg', [this.g.op('ReduceSum', [this.mul(picked, w)], [attr.int('keepdims', 0)])]);
    this.record([y], [logits], ([g]) => {
      const probs = this.g.op('Exp', [logp]);
      const wCol = this.g.op('Unsqueeze', [w, this.ints([-1])]);
      this.accumulate(logits, this.mul(g!, this.mul(this.g.op('Sub', [probs, oneHot]), wCol)));
    });
    return y;
  }
}
