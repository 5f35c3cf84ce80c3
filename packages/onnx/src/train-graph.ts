/**
 * The training step of the CausalFusion transformer as ONE ONNX graph: the official training forward
 * (cond tokens | clean context | noised tokens under the generalized causal mask), the AR-weighted
 * eps-MSE, and the gradient of every trainable parameter, emitted by {@link GradGraph}.
 *
 * Inputs: the parameters (training layout: Linear weights [in, out]; see `trainingEntries`), and the
 * step's tokens as `prepareTrainingTokens` lays them out (shuffled x_t, clean context, targets, raster
 * positions, labels after dropout), the timesteps, the mask as an additive bias and the per-token loss
 * weights (AR weight / element count of the whole batch, so that shards' losses and gradients add up).
 * Outputs: `loss` and `grad.<key>` per trainable parameter. Rows and tokens are dynamic; a step without
 * a clean context (one AR step) uses the variant built with `withClean: false` (ORT has no empty tensors
 * in Gemm).
 */
import { BODY_KEYS, blockKeys, CLASS_KEYS, derived, timestepFrequencies, trainingEntries, validateConfig, type ModelConfig } from '@causalfusion/config';
import { GradGraph } from './autodiff';
import { attr, FLOAT, INT64, valueInfo } from './graph';

export const TRAIN_IO = {
  labels: 'labels',
  timestep: 'timestep',
  noised: 'noised',
  positions: 'positions',
  clean: 'clean',
  cleanPositions: 'clean_positions',
  mask: 'mask',
  target: 'target',
  weights: 'weights',
  loss: 'loss',
  grad: (key: string) => `grad.${key}`,
} as const;

/** The transformer body shared by training graphs: pre-LN blocks with QK-LayerNorm attention and a tanh-GELU MLP. */
export class TransformerLayers {
  constructor(
    private readonly gg: GradGraph,
    private readonly D: number,
    private readonly H: number,
    /** [N] int64 of any rows-sized input: the batch size for the per-head reshapes. */
    private readonly rowsOf: string,
  ) {}

  private get hd(): number {
    return this.D / this.H;
  }

  /** x [N*seqLen, D] -> per head [N, H, seqLen, hd], with an optional per-head LayerNorm. */
  private heads(x: string, norm: string | null): string {
    const gg = this.gg;
    let h = x;
    if (norm) h = gg.reshape(gg.layerNorm(gg.reshape(h, [-1, this.hd]), `${norm}.weight`, `${norm}.bias`), [-1, this.D]);
    const shape = gg.op('Concat', [this.rowsOf, gg.g.constant(`shape.heads.${this.H}`, [-1, this.H, this.hd], 'int64')], [attr.int('axis', 0)]);
    return gg.transpose(gg.reshape(h, shape), [0, 2, 1, 3]);
  }

  /** One block (`blocks.<i>`) on x [N*seqLen, D] under an additive mask [seqLen, seqLen] (or null). */
  block(x: string, i: number, mask: string | null): string {
    const gg = this.gg;
    const k = blockKeys(i);
    const lin = (h: string, prefix: string, bias = true) => gg.linear(h, `${prefix}.weight`, bias ? `${prefix}.bias` : null);
    const norm = (h: string, prefix: string) => gg.layerNorm(h, `${prefix}.weight`, `${prefix}.bias`);
    const [q2, k2, v2] = gg.split(lin(norm(x, k.norm1), k.qkv, false), 1, [this.D, this.D, this.D], 3);
    const q = gg.scale(this.heads(q2, k.qNorm), 1 / Math.sqrt(this.hd));
    const key = this.heads(k2, k.kNorm);
    const v = this.heads(v2, null);
    const attn = gg.softmax(gg.matmul(q, key, true), mask); // [N, H, seqLen, seqLen]
    const o = gg.reshape(gg.transpose(gg.matmul(attn, v), [0, 2, 1, 3]), [-1, this.D]);
    const x1 = gg.add(x, lin(o, k.proj));
    return gg.add(x1, lin(gg.gelu(lin(norm(x1, k.norm2), k.fc1)), k.fc2));
  }

  /** The blocks over sequences seq [N, seqLen, D] under `mask`: [N, seqLen, D]. */
  blocks(seq: string, depth: number, mask: string | null): string {
    const gg = this.gg;
    let x = gg.reshape(seq, [-1, this.D]);
    for (let i = 0; i < depth; i++) x = this.block(x, i, mask);
    return gg.reshape(x, gg.op('Shape', [seq]));
  }

  /** t_embedder(t) for t [N] float: sinusoid [cos, sin], Linear, SiLU, Linear -> [N, D]. */
  timestepEmbed(t: string): string {
    const gg = this.gg;
    const args = gg.op('Mul', [gg.op('Unsqueeze', [t, gg.g.constant('axes.1', [1], 'int64')]), gg.g.constant('t_freqs', timestepFrequencies(), 'float')]);
    const sinusoid = gg.op('Concat', [gg.op('Cos', [args]), gg.op('Sin', [args])], [attr.int('axis', -1)]);
    const { timestepFc1: fc1, timestepFc2: fc2 } = BODY_KEYS;
    return gg.linear(gg.silu(gg.linear(sinusoid, `${fc1}.weight`, `${fc1}.bias`)), `${fc2}.weight`, `${fc2}.bias`);
  }

  /** x_proj of tokens [R, n, d] -> [R, n, D]; `rowsTokens` is [R, n] (int64). */
  project(tokens: string, tokenDim: number, rowsTokens: string): string {
    const gg = this.gg;
    const projected = gg.linear(
      gg.op('Reshape', [tokens, gg.g.constant(`shape.tokens.${tokenDim}`, [-1, tokenDim], 'int64')]),
      `${BODY_KEYS.xProj}.weight`,
      `${BODY_KEYS.xProj}.bias`,
    );
    return gg.reshape(projected, gg.op('Concat', [rowsTokens, gg.g.constant(`shape.D.${this.D}`, [this.D], 'int64')], [attr.int('axis', 0)]));
  }

  /** A LayerNorm + Linear head on h [rows, D] (the eps head by default). */
  head(h: string, normPrefix: string = BODY_KEYS.finalNorm, linearPrefix: string = BODY_KEYS.finalLinear): string {
    const gg = this.gg;
    return gg.linear(gg.layerNorm(h, `${normPrefix}.weight`, `${normPrefix}.bias`), `${linearPrefix}.weight`, `${linearPrefix}.bias`);
  }
}

/** Build the training graph of a class-conditional model (serialized ModelProto). */
export function buildTrainingGraph(config: ModelConfig, options: { withClean: boolean }): Uint8Array {
  validateConfig(config);
  const geo = derived(config);
  const D = config.hiddenSize;
  const C = config.numCondTokens;
  const L = geo.numTokens;
  const d = geo.tokenDim;
  const entries = trainingEntries(config);
  const gg = new GradGraph();
  for (const e of entries) if (e.trainable) gg.param(e.key);
  const io = TRAIN_IO;
  const layers = new TransformerLayers(gg, D, config.numHeads, gg.op('Shape', [io.labels]));

  // cond tokens: label_table[y] as [N, C, D] + cond_pos_embed
  const labelRows = gg.gather(CLASS_KEYS.labelTable, io.labels, geo.labelRows, C * D);
  const cond = gg.addBroadcast(gg.reshape(labelRows, [-1, C, D]), CLASS_KEYS.condPosEmbed, [0], false);
  // noised tokens: x_proj(x_t) + pos_embed[positions] + t_embed
  const embed = (tokens: string, positions: string) =>
    gg.add(layers.project(tokens, d, gg.op('Shape', [positions])), gg.gather(CLASS_KEYS.posEmbed, positions, L, D));
  const tEmbed = gg.reshape(layers.timestepEmbed(io.timestep), [-1, 1, D]);
  const noised = gg.addBroadcast(embed(io.noised, io.positions), tEmbed, [1], true);
  // clean context: x_proj(x) + pos_embed[positions of the first Lc tokens], no timestep
  const parts = options.withClean ? [cond, embed(io.clean, io.cleanPositions), noised] : [cond, noised];
  const seq = gg.concat(parts, 1); // [N, seqLen, D]
  const h = layers.blocks(seq, config.depth, io.mask);
  // the noised tokens are the last L of each sequence
  const prefixLength = gg.op('Sub', [gg.op('Shape', [seq], [attr.int('start', 1), attr.int('end', 2)]), gg.g.constant(`len.${L}`, [L], 'int64')]);
  const [, hNoised] = gg.split(h, 1, gg.op('Concat', [prefixLength, gg.g.constant(`len.${L}`, [L], 'int64')], [attr.int('axis', 0)]), 2);
  const pred = layers.head(gg.reshape(hNoised, [-1, D]));
  const loss = gg.weightedSquaredError(gg.reshape(pred, [-1, L, d]), io.target, io.weights);
  gg.g.op('Identity', [loss], [], io.loss);

  const trainable = entries.filter((e) => e.trainable);
  const grads = gg.gradients(
    loss,
    trainable.map((e) => e.key),
  );
  for (const e of trainable) {
    const g = grads.get(e.key);
    // every parameter reaches the loss; a zero-filled gradient would hide a wiring mistake
    if (!g) throw new Error(`internal: the loss does not depend on ${e.key}`);
    gg.g.op('Identity', [g], [], io.grad(e.key));
  }

  const inputs = [
    ...entries.map((e) => valueInfo(e.key, FLOAT, e.shape)),
    valueInfo(io.labels, INT64, ['N']),
    valueInfo(io.timestep, FLOAT, ['N']),
    valueInfo(io.noised, FLOAT, ['N', L, d]),
    valueInfo(io.positions, INT64, ['N', L]),
    ...(options.withClean ? [valueInfo(io.clean, FLOAT, ['N', 'Lc', d]), valueInfo(io.cleanPositions, INT64, ['N', 'Lc'])] : []),
    valueInfo(io.mask, FLOAT, ['seqLen', 'seqLen']),
    valueInfo(io.target, FLOAT, ['N', L, d]),
    valueInfo(io.weights, FLOAT, [1, L, 1]),
  ];
  const outputs = [valueInfo(io.loss, FLOAT, []), ...trainable.map((e) => valueInfo(io.grad(e.key), FLOAT, e.shape))];
  return gg.g.finish('causalfusion_train', inputs, outputs, true);
}
