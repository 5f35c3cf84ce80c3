/**
 * Dense float64 matrix products, the only O(n^3) kernels the Frechet distance needs. Two implementations:
 * plain JavaScript loops (small matrices, no native code) and onnxruntime-node's CPU MatMul, whose
 * multithreaded float64 GEMM is ~20x faster than scalar JavaScript on 2048x2048 matrices.
 * All matrices are row-major Float64Array.
 */
import { createSession, loadOrt } from '@causalfusion/ort';
import { onnx } from 'onnx-proto';

export interface MatMul {
  /** A (m x k) times B (k x n). */
  mul(a: Float64Array, b: Float64Array, m: number, k: number, n: number): Promise<Float64Array>;
  /** C - A B with C (m x n), A (m x k), B (k x n); returns a new array. */
  mulSub(c: Float64Array, a: Float64Array, b: Float64Array, m: number, k: number, n: number): Promise<Float64Array>;
}

/** Row-major i-k-j loops: the inner loop streams contiguous rows of B and C. */
function jsMulInto(out: Float64Array, a: Float64Array, b: Float64Array, m: number, k: number, n: number, sign: 1 | -1): void {
  for (let i = 0; i < m; i++) {
    const rowA = i * k;
    const rowC = i * n;
    for (let p = 0; p < k; p++) {
      const f = sign * a[rowA + p];
      if (f === 0) continue;
      const rowB = p * n;
      for (let j = 0; j < n; j++) out[rowC + j] += f * b[rowB + j];
    }
  }
}

export const jsMatMul: MatMul = {
  async mul(a, b, m, k, n) {
    const out = new Float64Array(m * n);
    jsMulInto(out, a, b, m, k, n, 1);
    return out;
  },
  async mulSub(c, a, b, m, k, n) {
    const out = Float64Array.from(c);
    jsMulInto(out, a, b, m, k, n, -1);
    return out;
  },
};

/** Two tiny float64 graphs with symbolic shapes: Y = A @ B and Y = C - A @ B. */
function matmulModel(withSub: boolean): Uint8Array {
  const DOUBLE = onnx.TensorProto.DataType.DOUBLE;
  const matrix = (name: string) =>
    onnx.ValueInfoProto.create({
      name,
      type: { tensorType: { elemType: DOUBLE, shape: { dim: [{ dimParam: `${name}_rows` }, { dimParam: `${name}_cols` }] } } },
    });
  // C - A B is one Gemm (alpha = -1, beta = 1): no intermediate m x n product is materialised.
  const node = withSub
    ? [
        onnx.NodeProto.create({
          opType: 'Gemm',
          input: ['A', 'B', 'C'],
          output: ['Y'],
          attribute: [
            { name: 'alpha', type: onnx.AttributeProto.AttributeType.FLOAT, f: -1 },
            { name: 'beta', type: onnx.AttributeProto.AttributeType.FLOAT, f: 1 },
          ],
        }),
      ]
    : [onnx.NodeProto.create({ opType: 'MatMul', input: ['A', 'B'], output: ['Y'] })];
  const graph = onnx.GraphProto.create({
    name: withSub ? 'mul_sub' : 'mul',
    node,
    input: withSub ? [matrix('C'), matrix('A'), matrix('B')] : [matrix('A'), matrix('B')],
    output: [matrix('Y')],
  });
  const model = onnx.ModelProto.create({
    irVersion: 8,
    opsetImport: [{ domain: '', version: 17 }],
    producerName: '@causalfusion/eval',
    graph,
  });
  return onnx.ModelProto.encode(model).finish();
}

let ortMatMulPromise: Promise<MatMul> | undefined;

/** The onnxruntime-node MatMul (sessions created once per process). */
export function ortMatMul(): Promise<MatMul> {
  ortMatMulPromise ??= (async () => {
    // Loaded lazily so that small problems and the pure-JS path never touch native code; inference sessions
    // do not spin-wait (between products the JavaScript stages need the cores).
    const ort = loadOrt();
    const mulSession = await createSession(matmulModel(false));
    const mulSubSession = await createSession(matmulModel(true));
    const tensor = (data: Float64Array, rows: number, cols: number) => new ort.Tensor('float64', data, [rows, cols]);
    return {
      async mul(a, b, m, k, n) {
        const out = await mulSession.run({ A: tensor(a, m, k), B: tensor(b, k, n) });
        return out.Y.data as Float64Array;
      },
      async mulSub(c, a, b, m, k, n) {
        const out = await mulSubSession.run({ C: tensor(c, m, n), A: tensor(a, m, k), B: tensor(b, k, n) });
        return out.Y.data as Float64Array;
      },
    };
  })();
  return ortMatMulPromise;
}

/** Products with fewer multiply-adds than this stay in JavaScript (ORT's call overhead dominates below). */
const ORT_MIN_WORK = 64 * 64 * 64;

/** Picks JavaScript or ORT per call by size; `backend` forces one. */
export function autoMatMul(backend: 'auto' | 'js' | 'onnxruntime' = 'auto'): MatMul {
  if (backend === 'js') return jsMatMul;
  const pick = async (m: number, k: number, n: number) => (backend === 'onnxruntime' || m * k * n >= ORT_MIN_WORK ? ortMatMul() : jsMatMul);
  return {
    async mul(a, b, m, k, n) {
      return (await pick(m, k, n)).mul(a, b, m, k, n);
    },
    async mulSub(c, a, b, m, k, n) {
      return (await pick(m, k, n)).mulSub(c, a, b, m, k, n);
    },
  };
}
