/**
 * A trained generative model's transformer as an image classifier (the paper's Table 6b: fine-tuning the
 * generative model for classification), as ONE ONNX graph emitted by {@link GradGraph}:
 *
 *   cond  = label_table[null class] + cond_pos_embed                       [N, T, D]
 *   image = x_proj(tokens) + pos_embed (raster positions, all L tokens)    [N, L, D]   (clean: no noise, no timestep)
 *   h     = blocks([cond | image]) under full attention (no mask)          [N, T + L, D]
 *   feat  = mean over the L image positions of h                           [N, D]
 *   logits = cls_head.fc(LayerNorm_cls_head.norm(feat))                    [N, K]
 *   loss  = sum_n w_n * cross_entropy(logits_n, label_n)                   (w_n = 1 / batch size)
 *
 * The image tokens enter as the training graph's clean context does (x_proj + position embedding, no
 * timestep embedding); the timestep embedder and the eps head (final_layer) are not used. Three variants:
 * `probe` (gradients of the head only: the backbone is a constant function of the inputs, no backward
 * nodes are emitted for it), `full` (gradients of the head and of every backbone parameter the logits
 * depend on), and `infer` (logits only).
 *
 * Inputs: the backbone parameters ({@link classifyEntries}, training layout), the head parameters, the
 * condition labels [N] int64 (the null class, filled by the caller), the tokens [N, L, d] (raster order,
 * as PixelTokenizer.encode writes them), and for the training variants the labels [N] int64 and the
 * per-sample loss weights [N]. Outputs: `logits`, and `loss` + `grad.<key>` per trainable parameter.
 */
import { derived, trainingEntries, validateConfig, type ModelConfig } from '@causalfusion/config';
import { GradGraph } from './autodiff';
import { FLOAT, INT64, valueInfo } from './graph';
import { TransformerLayers } from './train-graph';

export const CLASSIFY_IO = {
  condLabels: 'cond_labels',
  tokens: 'tokens',
  labels: 'labels',
  weights: 'weights',
  logits: 'logits',
  loss: 'loss',
  grad: (key: string) => `grad.${key}`,
} as const;

export type ClassifyMode = 'probe' | 'full' | 'infer';

/** Prefix of the classification head's parameters. */
export const HEAD_PREFIX = 'cls_head.';

/**
 * One parameter of a classifier: its key, official shape (as the safetensors files store it) and training
 * layout (nn.Linear weights as [in, out]); the generative model's entries have these fields too.
 */
export interface ClassifyEntry {
  key: string;
  officialShape: number[];
  shape: number[];
  /** An nn.Linear weight: official [out, in], training [in, out]. */
  transposed: boolean;
  trainable: boolean;
}

/** Backbone parameters the classifier does not use: the timestep embedder and the eps head. */
const UNUSED_PREFIXES = ['t_embedder.', 'final_layer.'];

/** Whether a generative model's parameter feeds the classifier's logits. */
export function usedByClassifier(key: string): boolean {
  return !UNUSED_PREFIXES.some((p) => key.startsWith(p));
}

/**
 * The head: a LayerNorm over the pooled features and a Linear D -> K (official layout of the Linear:
 * [K, D], training layout [D, K]).
 */
export function classifyHeadEntries(hiddenSize: number, numLabels: number): ClassifyEntry[] {
  if (!Number.isInteger(numLabels) || numLabels < 2) throw new Error(`a classifier needs at least 2 classes, got ${numLabels}`);
  const D = hiddenSize;
  return [
    { key: `${HEAD_PREFIX}norm.weight`, officialShape: [D], shape: [D], transposed: false, trainable: true },
    { key: `${HEAD_PREFIX}norm.bias`, officialShape: [D], shape: [D], transposed: false, trainable: true },
    { key: `${HEAD_PREFIX}fc.weight`, officialShape: [numLabels, D], shape: [D, numLabels], transposed: true, trainable: true },
    { key: `${HEAD_PREFIX}fc.bias`, officialShape: [numLabels], shape: [numLabels], transposed: false, trainable: true },
  ];
}

/**
 * Every parameter of a classifier, in the order its holders keep them: the generative model's
 * trainingEntries (all of them, so that the exported folder stays a complete model), then the head.
 */
export function classifyEntries(config: ModelConfig, numLabels: number): ClassifyEntry[] {
  const backbone: ClassifyEntry[] = trainingEntries(config).map(({ key, officialShape, shape, transposed, trainable }) => ({
    key,
    officialShape,
    shape,
    transposed,
    trainable,
  }));
  return [...backbone, ...classifyHeadEntries(config.hiddenSize, numLabels)];
}

/** The graph's parameter inputs: the entries the logits depend on. */
export function classifyGraphEntries(config: ModelConfig, numLabels: number): ClassifyEntry[] {
  return classifyEntries(config, numLabels).filter((e) => usedByClassifier(e.key));
}

/** Which parameters a mode trains: the head (probe), or the head and the used trainable backbone (full). */
export function classifyTrainable(config: ModelConfig, numLabels: number, mode: ClassifyMode): ClassifyEntry[] {
  if (mode === 'infer') return [];
  return classifyGraphEntries(config, numLabels).filter((e) => e.trainable && (mode === 'full' || e.key.startsWith(HEAD_PREFIX)));
}

/** Build the classification graph of a model (serialized ModelProto). The model needs a null class (label dropout). */
export function buildClassifyGraph(config: ModelConfig, numLabels: number, mode: ClassifyMode): Uint8Array {
  validateConfig(config);
  const geo = derived(config);
  if (geo.nullClass === null) {
    throw new Error('the classifier conditions on the null class, and this model has none (it was trained without label dropout, class_dropout_prob 0)');
  }
  const D = config.hiddenSize;
  const T = config.numCondTokens;
  const L = geo.numTokens;
  const d = geo.tokenDim;
  const K = numLabels;
  const io = CLASSIFY_IO;
  const entries = classifyGraphEntries(config, K);
  const trainable = classifyTrainable(config, K, mode);
  const gg = new GradGraph();
  for (const e of trainable) gg.param(e.key);
  const layers = new TransformerLayers(gg, D, config.numHeads, gg.op('Shape', [io.condLabels]));

  // cond tokens: the null class's rows of the label table [N, T, D] + cond_pos_embed
  const labelRows = gg.gather('y_embedder.embedding_table.weight', io.condLabels, geo.labelRows, T * D);
  const cond = gg.addBroadcast(gg.reshape(labelRows, [-1, T, D]), 'cond_pos_embed', [0], false);
  // image tokens: x_proj(x) + pos_embed, raster order, no timestep (the clean context's embedding)
  const projected = gg.linear(gg.reshape(io.tokens, [-1, d]), 'x_proj.weight', 'x_proj.bias');
  const image = gg.addBroadcast(gg.reshape(projected, [-1, L, D]), 'pos_embed', [0], false);
  const seq = gg.concat([cond, image], 1); // [N, T + L, D]

  const [, hImage] = gg.split(layers.blocks(seq, config.depth, null), 1, [T, L], 2); // [N, L, D]
  // mean over the L image positions, as one product: [N, D, L] @ (1/L) -> [N, D]
  const perChannel = gg.reshape(gg.transpose(hImage, [0, 2, 1]), [-1, L]);
  const pooled = gg.reshape(gg.linear(perChannel, gg.g.constant(`pool.${L}`, new Array(L).fill(1 / L), 'float', [L, 1]), null), [-1, D]);
  const logits = gg.linear(gg.layerNorm(pooled, `${HEAD_PREFIX}norm.weight`, `${HEAD_PREFIX}norm.bias`), `${HEAD_PREFIX}fc.weight`, `${HEAD_PREFIX}fc.bias`);
  gg.g.op('Identity', [logits], [], io.logits);

  const inputs = [...entries.map((e) => valueInfo(e.key, FLOAT, e.shape)), valueInfo(io.condLabels, INT64, ['N']), valueInfo(io.tokens, FLOAT, ['N', L, d])];
  const outputs = [valueInfo(io.logits, FLOAT, ['N', K])];
  if (mode !== 'infer') {
    const loss = gg.weightedCrossEntropy(logits, io.labels, io.weights, K);
    gg.g.op('Identity', [loss], [], io.loss);
    const grads = gg.gradients(
      loss,
      trainable.map((e) => e.key),
    );
    for (const e of trainable) {
      const g = grads.get(e.key);
      if (!g) throw new Error(`internal: the classification loss does not depend on ${e.key}`);
      gg.g.op('Identity', [g], [], io.grad(e.key));
    }
    inputs.push(valueInfo(io.labels, INT64, ['N']), valueInfo(io.weights, FLOAT, ['N']));
    outputs.push(valueInfo(io.loss, FLOAT, []), ...trainable.map((e) => valueInfo(io.grad(e.key), FLOAT, e.shape)));
  }
  return gg.g.finish(`causalfusion_classify_${mode}`, inputs, outputs, true);
}
