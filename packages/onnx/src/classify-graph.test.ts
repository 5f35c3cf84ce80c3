/**
 * The classification graph against a plain float64 JavaScript forward of the same network (cond tokens
 * of the null class | clean image tokens, full attention, mean pool, LayerNorm + Linear head,
 * cross-entropy): the logits and the loss agree, and every gradient of the `full` and `probe` graphs
 * matches central finite differences of the float64 loss.
 */
import { createRng, type Rng } from '@causalfusion/rng';
import { derived, type ModelConfig } from '@causalfusion/config';
import { classifyEntries, classifyGraphEntries, HEAD_PREFIX, usedByClassifier, type ClassifyEntry } from './classify-graph';
import { OrtClassifySession, predictions } from './classify-trainer';

const config: ModelConfig = {
  inputSize: 8,
  patchSize: 4,
  latentChannels: 1,
  hiddenSize: 8,
  numCondTokens: 2,
  depth: 2,
  numHeads: 2,
  mlpRatio: 2,
  numClasses: 3,
  classDropoutProb: 0.1,
  trainablePos: true,
};
const K = 4;
const N = 3;

type P = Record<string, Float64Array>;

// ------------------------------------------------------------------ a float64 reference forward

function layerNorm(x: Float64Array, rows: number, w: Float64Array, b: Float64Array, eps = 1e-5): Float64Array {
  const n = w.length;
  const out = new Float64Array(rows * n);
  for (let r = 0; r < rows; r++) {
    let mean = 0;
    for (let i = 0; i < n; i++) mean += x[r * n + i];
    mean /= n;
    let v = 0;
    for (let i = 0; i < n; i++) v += (x[r * n + i] - mean) ** 2;
    const inv = 1 / Math.sqrt(v / n + eps);
    for (let i = 0; i < n; i++) out[r * n + i] = (x[r * n + i] - mean) * inv * w[i] + b[i];
  }
  return out;
}

/** x [rows, in] @ W [in, out] + b. */
function linear(x: Float64Array, rows: number, w: Float64Array, inDim: number, b: Float64Array | null): Float64Array {
  const outDim = w.length / inDim;
  const y = new Float64Array(rows * outDim);
  for (let r = 0; r < rows; r++)
    for (let o = 0; o < outDim; o++) {
      let acc = b ? b[o] : 0;
      for (let i = 0; i < inDim; i++) acc += x[r * inDim + i] * w[i * outDim + o];
      y[r * outDim + o] = acc;
    }
  return y;
}

const gelu = (x: number) => 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3)));

function referenceLoss(p: P, tokens: Float64Array, labels: number[]): { loss: number; logits: Float64Array } {
  const geo = derived(config);
  const { hiddenSize: D, numCondTokens: T, numHeads: H } = config;
  const L = geo.numTokens;
  const d = geo.tokenDim;
  const hd = D / H;
  const S = T + L;
  const nullRow = geo.nullClass!;
  const x = new Float64Array(N * S * D);
  const proj = linear(tokens, N * L, p['x_proj.weight'], d, p['x_proj.bias']);
  for (let n = 0; n < N; n++) {
    for (let t = 0; t < T; t++)
      for (let c = 0; c < D; c++) x[(n * S + t) * D + c] = p['y_embedder.embedding_table.weight'][nullRow * T * D + t * D + c] + p.cond_pos_embed[t * D + c];
    for (let l = 0; l < L; l++) for (let c = 0; c < D; c++) x[(n * S + T + l) * D + c] = proj[(n * L + l) * D + c] + p.pos_embed[l * D + c];
  }
  let h = x;
  for (let b = 0; b < config.depth; b++) {
    const k = (name: string) => p[`blocks.${b}.${name}`];
    const n1 = layerNorm(h, N * S, k('norm1.weight'), k('norm1.bias'));
    const qkv = linear(n1, N * S, k('attn.qkv.weight'), D, null); // [N*S, 3D]
    const o = new Float64Array(N * S * D);
    for (let n = 0; n < N; n++)
      for (let head = 0; head < H; head++) {
        const part = (which: number, norm: string | null) => {
          const v = new Float64Array(S * hd);
          for (let s = 0; s < S; s++) for (let j = 0; j < hd; j++) v[s * hd + j] = qkv[(n * S + s) * 3 * D + which * D + head * hd + j];
          return norm ? layerNorm(v, S, k(`${norm}.weight`), k(`${norm}.bias`)) : v;
        };
        const q = part(0, 'attn.q_norm');
        const kk = part(1, 'attn.k_norm');
        const v = part(2, null);
        for (let i = 0; i < S; i++) {
          const scores = new Float64Array(S);
          let max = -Infinity;
          for (let j = 0; j < S; j++) {
            let acc = 0;
            for (let e = 0; e < hd; e++) acc += q[i * hd + e] * kk[j * hd + e];
            scores[j] = acc / Math.sqrt(hd);
            max = Math.max(max, scores[j]);
          }
          let sum = 0;
          for (let j = 0; j < S; j++) sum += scores[j] = Math.exp(scores[j] - max);
          for (let e = 0; e < hd; e++) {
            let acc = 0;
            for (let j = 0; j < S; j++) acc += (scores[j] / sum) * v[j * hd + e];
            o[(n * S + i) * D + head * hd + e] = acc;
          }
        }
      }
    const attnOut = linear(o, N * S, k('attn.proj.weight'), D, k('attn.proj.bias'));
    const x1 = h.map((val, i) => val + attnOut[i]);
    const mlpHidden = geo.mlpHidden;
    const m1 = linear(layerNorm(x1, N * S, k('norm2.weight'), k('norm2.bias')), N * S, k('mlp.fc1.weight'), D, k('mlp.fc1.bias')).map(gelu);
    const m2 = linear(m1, N * S, k('mlp.fc2.weight'), mlpHidden, k('mlp.fc2.bias'));
    h = x1.map((val, i) => val + m2[i]);
  }
  const pooled = new Float64Array(N * D);
  for (let n = 0; n < N; n++) for (let l = 0; l < L; l++) for (let c = 0; c < D; c++) pooled[n * D + c] += h[(n * S + T + l) * D + c] / L;
  const logits = linear(
    layerNorm(pooled, N, p[`${HEAD_PREFIX}norm.weight`], p[`${HEAD_PREFIX}norm.bias`]),
    N,
    p[`${HEAD_PREFIX}fc.weight`],
    D,
    p[`${HEAD_PREFIX}fc.bias`],
  );
  let loss = 0;
  for (let n = 0; n < N; n++) {
    let max = -Infinity;
    for (let c = 0; c < K; c++) max = Math.max(max, logits[n * K + c]);
    let sum = 0;
    for (let c = 0; c < K; c++) sum += Math.exp(logits[n * K + c] - max);
    loss += (Math.log(sum) + max - logits[n * K + labels[n]]) / N;
  }
  return { loss, logits };
}

// ------------------------------------------------------------------ fixtures

function randomParams(rng: Rng, entries: ClassifyEntry[]): Float64Array[] {
  return entries.map((e) => {
    const n = e.shape.reduce((a, b) => a * b, 1);
    const isNormWeight = /norm\d?\.weight$/.test(e.key);
    return Float64Array.from({ length: n }, () => (isNormWeight ? 1 + 0.2 * rng.normal() : 0.4 * rng.normal()));
  });
}

describe('classification graph', () => {
  const entries = classifyEntries(config, K);
  const rng = createRng(7);
  const params64 = randomParams(rng, entries);
  const params32 = params64.map((a) => Float32Array.from(a));
  const geo = derived(config);
  const tokens64 = Float64Array.from({ length: N * geo.numTokens * geo.tokenDim }, () => rng.uniform() * 2 - 1);
  const tokens32 = Float32Array.from(tokens64);
  const labels = [0, 3, 1];
  const byKey = (arrays: Float64Array[]): P => Object.fromEntries(entries.map((e, i) => [e.key, arrays[i]]));

  let full: OrtClassifySession;
  let probe: OrtClassifySession;
  beforeAll(async () => {
    full = await OrtClassifySession.create(config, K, { mode: 'full', threads: 1 });
    probe = await OrtClassifySession.create(config, K, { mode: 'probe', threads: 1 });
  });
  afterAll(async () => {
    await full.release();
    await probe.release();
  });

  it('uses every backbone parameter but the timestep embedder and the eps head', () => {
    const used = classifyGraphEntries(config, K).map((e) => e.key);
    expect(used.some((k) => k.startsWith('t_embedder') || k.startsWith('final_layer'))).toBe(false);
    expect(entries.filter((e) => !usedByClassifier(e.key)).length).toBeGreaterThan(0);
    expect(probe.trainable.map((e) => e.key)).toEqual([
      `${HEAD_PREFIX}norm.weight`,
      `${HEAD_PREFIX}norm.bias`,
      `${HEAD_PREFIX}fc.weight`,
      `${HEAD_PREFIX}fc.bias`,
    ]);
    expect(full.trainable.length).toBe(classifyGraphEntries(config, K).length);
  });

  it('computes the logits and the loss of the float64 reference', async () => {
    const ref = referenceLoss(byKey(params64), tokens64, labels);
    const out = await full.lossAndGrads(params32, tokens32, labels);
    const logits = await full.logits(params32, tokens32);
    for (let i = 0; i < ref.logits.length; i++) {
      expect(Math.abs(logits[i] - ref.logits[i])).toBeLessThan(1e-4);
      expect(Math.abs(out.logits[i] - ref.logits[i])).toBeLessThan(1e-4);
    }
    expect(Math.abs(out.loss - ref.loss)).toBeLessThan(1e-5);
    const { labels: predicted, probs } = predictions(logits, K);
    for (let n = 0; n < N; n++) {
      const row = Array.from(ref.logits.subarray(n * K, (n + 1) * K));
      expect(predicted[n]).toBe(row.indexOf(Math.max(...row)));
      expect(probs[n]).toBeGreaterThan(1 / K - 1e-6);
    }
  });

  it('gives every gradient of the full graph as central finite differences of the float64 loss', async () => {
    const { grads } = await full.lossAndGrads(params32, tokens32, labels);
    const pick = createRng(3);
    const h = 1e-5;
    let worst = 0;
    full.trainable.forEach((e, t) => {
      const i = entries.findIndex((x) => x.key === e.key);
      const values = params64[i];
      // up to 6 entries per parameter (all of the small ones)
      const idx = values.length <= 6 ? values.map((_, j) => j) : Array.from({ length: 6 }, () => pick.uniformInt(values.length));
      let maxRef = 0;
      let maxErr = 0;
      for (const j of idx) {
        const keep = values[j];
        values[j] = keep + h;
        const plus = referenceLoss(byKey(params64), tokens64, labels).loss;
        values[j] = keep - h;
        const minus = referenceLoss(byKey(params64), tokens64, labels).loss;
        values[j] = keep;
        const numeric = (plus - minus) / (2 * h);
        maxRef = Math.max(maxRef, Math.abs(numeric));
        maxErr = Math.max(maxErr, Math.abs(numeric - grads[t][j]));
      }
      const rel = maxErr / Math.max(maxRef, 1e-3);
      worst = Math.max(worst, rel);
      if (rel > 2e-3) throw new Error(`${e.key}: analytic vs numeric gradient differ by ${rel} (relative)`);
    });
    expect(worst).toBeLessThan(2e-3); // 8e-5 here: float32 graph vs float64 differences
  });

  it('gives the probe the head gradients of the full graph and nothing else', async () => {
    const a = await full.lossAndGrads(params32, tokens32, labels);
    const b = await probe.lossAndGrads(params32, tokens32, labels);
    expect(b.grads.length).toBe(4);
    expect(Math.abs(a.loss - b.loss)).toBeLessThan(1e-6);
    probe.trainable.forEach((e, t) => {
      const g = a.grads[full.trainable.findIndex((x) => x.key === e.key)];
      for (let j = 0; j < g.length; j++) expect(Math.abs(g[j] - b.grads[t][j])).toBeLessThan(1e-5);
    });
    expect(probe.trainableIndices()).toEqual([entries.length - 4, entries.length - 3, entries.length - 2, entries.length - 1]);
  });

  it('refuses labels out of range and a model without a null class', async () => {
    await expect(full.lossAndGrads(params32, tokens32, [0, 4, 1])).rejects.toThrow(/label 4/);
    await expect(OrtClassifySession.create({ ...config, classDropoutProb: 0 }, K, { mode: 'infer' })).rejects.toThrow(/null class/);
  });
});
