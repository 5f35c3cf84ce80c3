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
import { derived, trainingEntries, validateConfig, type ModelConfig } from '@causalfusion/transformer/config';
import { GradGraph } from './autodiff';
import { attr, FLOAT, INT64, timestepFrequencies, valueInfo } from './graph';

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

  /** x [N*S, D] -> per head [N, H, S, hd], with an optional per-head LayerNorm. */
  private heads(x: string, norm: string | null): string {
    const gg = this.gg;
    let h = x;
    if (norm) h = gg.reshape(gg.layerNorm(gg.reshape(h, [-1, this.hd]), `${norm}.weight`, `${norm}.bias`), [-1, this.D]);
    const shape = gg.op('Concat', [this.rowsOf, gg.g.constant(`shape.heads.${this.H}`, [-1, this.H, this.hd], 'int64')], [attr.int('axis', 0)]);
    return gg.transpose(gg.reshape(h, shape), [0, 2, 1, 3]);
  }

  /** One block on x [N*S, D] under an additive mask [S, S] (or null). */
  block(x: string, prefix: string, mask: string | null): string {
    const gg = this.gg;
    const h = gg.layerNorm(x, `${prefix}.norm1.weight`, `${prefix}.norm1.bias`);
    const [q2, k2, v2] = gg.split(gg.linear(h, `${prefix}.attn.qkv.weight`, null), 1, [this.D, this.D, this.D], 3);
    const q = gg.scale(this.heads(q2, `${prefix}.attn.q_norm`), 1 / Math.sqrt(this.hd));
    const k = this.heads(k2, `${prefix}.attn.k_norm`);
    const v = this.heads(v2, null);
    const attn = gg.softmax(gg.matmul(q, k, true), mask); // [N, H, S, S]
    const o = gg.reshape(gg.transpose(gg.matmul(attn, v), [0, 2, 1, 3]), [-1, this.D]);
    const x1 = gg.add(x, gg.linear(o, `${prefix}.attn.proj.weight`, `${prefix}.attn.proj.bias`));
    const m = gg.linear(gg.gelu(gg.linear(gg.layerNorm(x1, `${prefix}.norm2.weight`, `${prefix}.norm2.bias`), `${prefix}.mlp.fc1.weight`, `${prefix}.mlp.fc1.bias`)), `${prefix}.mlp.fc2.weight`, `${prefix}.mlp.fc2.bias`);
    return gg.add(x1, m);
  }

  /** t_embedder(t) for t [N] float: sinusoid [cos, sin], Linear, SiLU, Linear -> [N, D]. */
  timestepEmbed(t: string, prefix = 't_embedder.mlp'): string {
    const gg = this.gg;
    const args = gg.op('Mul', [gg.op('Unsqueeze', [t, gg.g.constant('axes.1', [1], 'int64')]), gg.g.constant('t_freqs', timestepFrequencies(), 'float')]);
    const sinusoid = gg.op('Concat', [gg.op('Cos', [args]), gg.op('Sin', [args])], [attr.int('axis', -1)]);
    return gg.linear(gg.silu(gg.linear(sinusoid, `${prefix}.0.weight`, `${prefix}.0.bias`)), `${prefix}.2.weight`, `${prefix}.2.bias`);
  }
}

/** Build the training graph of a class-conditional model (serialized ModelProto). */
export function buildTrainingGraph(config: ModelConfig, options: { withClean: boolean }): Uint8Array {
  validateConfig(config);
  const geo = derived(config);
  const D = config.hiddenSize;
  const T = config.numCondTokens;
  const L = geo.numTokens;
  const d = geo.tokenDim;
  const entries = trainingEntries(config);
  const gg = new GradGraph();
  for (const e of entries) if (e.trainable) gg.param(e.key);
  const io = TRAIN_IO;
  const layers = new TransformerLayers(gg, D, config.numHeads, gg.op('Shape', [io.labels]));

  // cond tokens: label_table[y] as [N, T, D] + cond_pos_embed
  const labelRows = gg.gather('y_embedder.embedding_table.weight', io.labels, geo.labelRows, T * D);
  const cond = gg.addBroadcast(gg.reshape(labelRows, [-1, T, D]), 'cond_pos_embed', [0], false);
  // noised tokens: x_proj(x_t) + pos_embed[positions] + t_embed
  const embed = (tokens: string, positions: string) => {
    const projected = gg.linear(gg.op('Reshape', [tokens, gg.g.constant(`shape.tokens.${d}`, [-1, d], 'int64')]), 'x_proj.weight', 'x_proj.bias');
    const shape = gg.op('Concat', [gg.op('Shape', [positions]), gg.g.constant(`shape.D.${D}`, [D], 'int64')], [attr.int('axis', 0)]); // [N, n, D]
    return gg.add(gg.reshape(projected, shape), gg.gather('pos_embed', positions, L, D));
  };
  const tEmbed = gg.reshape(layers.timestepEmbed(io.timestep), [-1, 1, D]);
  const noised = gg.addBroadcast(embed(io.noised, io.positions), tEmbed, [1], true);
  // clean context: x_proj(x) + pos_embed[positions of the first Lc tokens], no timestep
  const parts = options.withClean ? [cond, embed(io.clean, io.cleanPositions), noised] : [cond, noised];
  const seq = gg.concat(parts, 1); // [N, S, D]

  let x = gg.reshape(seq, [-1, D]);
  for (let l = 0; l < config.depth; l++) x = layers.block(x, `blocks.${l}`, io.mask);
  // the noised tokens are the last L of each sequence
  const seq3 = gg.reshape(x, gg.op('Shape', [seq]));
  const prefixLength = gg.op('Sub', [gg.op('Shape', [seq], [attr.int('start', 1), attr.int('end', 2)]), gg.g.constant(`len.${L}`, [L], 'int64')]);
  const [, hNoised] = gg.split(seq3, 1, gg.op('Concat', [prefixLength, gg.g.constant(`len.${L}`, [L], 'int64')], [attr.int('axis', 0)]), 2);
  const pred = gg.linear(gg.layerNorm(gg.reshape(hNoised, [-1, D]), 'final_layer.0.weight', 'final_layer.0.bias'), 'final_layer.1.weight', 'final_layer.1.bias');
  const loss = gg.weightedSquaredError(gg.reshape(pred, [-1, L, d]), io.target, io.weights);
  gg.g.op('Identity', [loss], [], io.loss);

  const trainable = entries.filter((e) => e.trainable);
  const grads = gg.gradients(loss, trainable.map((e) => e.key));
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
    valueInfo(io.mask, FLOAT, ['S', 'S']),
    valueInfo(io.target, FLOAT, ['N', L, d]),
    valueInfo(io.weights, FLOAT, [1, L, 1]),
  ];
  const outputs = [valueInfo(io.loss, FLOAT, []), ...trainable.map((e) => valueInfo(io.grad(e.key), FLOAT, e.shape))];
  return gg.g.finish('causalfusion_train', inputs, outputs, true);
}
