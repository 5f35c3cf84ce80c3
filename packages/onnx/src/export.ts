/**
 * An exported ONNX folder: cond.onnx, push.onnx and eps.onnx pointing into ONE weights file (ONNX
 * external data, so the block weights the three graphs share are stored once and no graph meets
 * protobuf's 2 GB cap), and causalfusion-onnx.json, the manifest: format version, model config, and each
 * graph's input and output names. Every file is written atomically, the manifest last, so a folder with
 * a manifest is complete.
 */
import * as fs from 'fs';
import * as path from 'path';
import { writeAll, writeFileAtomic, writeFileAtomicWith } from '@causalfusion/safetensors';
import { configFromJson, configToJson, derived, type ModelConfig } from '@causalfusion/config';
import { buildOnnxGraphs, graphSignature, OPSET, type ExternalWeights, type GraphName } from './graph';
import { checkWeights, readModelFolder, type Weights } from './weights';

export const MANIFEST_FILE = 'causalfusion-onnx.json';
export const FORMAT = 'causalfusion-onnx';
export const FORMAT_VERSION = 1;
export const GRAPH_FILES: Record<GraphName, string> = { cond: 'cond.onnx', push: 'push.onnx', eps: 'eps.onnx' };
export const EXTERNAL_WEIGHTS_FILE = 'weights.bin';

export interface OnnxManifest {
  format: typeof FORMAT;
  version: number;
  opset: number;
  /** The model config as config.json writes it (official argument names). */
  config: Record<string, number | boolean>;
  numTokens: number;
  tokenDim: number;
  /** The null class label (numClasses), or null without label dropout. */
  nullClass: number | null;
  /** The external data file all graphs point into. */
  weights: string;
  graphs: Record<GraphName, { file: string; inputs: string[]; outputs: string[] }>;
  /** Where the weights came from. */
  source: string;
}

/** A manifest as read back, with the config parsed. */
export interface LoadedManifest extends OnnxManifest {
  modelConfig: ModelConfig;
}

/** Write the external weights file atomically, tensor by tensor (it can be larger than one buffer). */
function writeWeightsAtomic(file: string, weights: ExternalWeights): void {
  writeFileAtomicWith(file, (fd) => {
    for (const t of weights.tensors) writeAll(fd, new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength), t.offset);
  });
}

/** Weights already in memory (e.g. read from a PyTorch checkpoint), for {@link exportOnnx}. */
export interface InMemoryModel {
  config: ModelConfig;
  weights: Weights;
  /** Where they came from (recorded in the manifest). */
  source: string;
}

/**
 * Export a model (a folder with model.safetensors + config.json, a .safetensors file, or weights in
 * memory, checked against their config) to an ONNX folder that OrtDenoiser.load reads. Returns the
 * manifest written.
 */
export function exportOnnx(model: string | InMemoryModel, outDir: string): OnnxManifest {
  let config: ModelConfig, weights: Weights, weightsFile: string;
  if (typeof model === 'string') ({ config, weights, weightsFile } = readModelFolder(model));
  else {
    ({ config, weights, source: weightsFile } = model);
    checkWeights(config, weights, weightsFile);
  }
  const graphs = buildOnnxGraphs(config, weights, { externalData: EXTERNAL_WEIGHTS_FILE });
  const d = derived(config);
  const signature = graphSignature(config.depth);
  const manifest: OnnxManifest = {
    format: FORMAT,
    version: FORMAT_VERSION,
    opset: OPSET,
    config: configToJson(config),
    numTokens: d.numTokens,
    tokenDim: d.tokenDim,
    nullClass: d.nullClass,
    weights: EXTERNAL_WEIGHTS_FILE,
    graphs: {
      cond: { file: GRAPH_FILES.cond, ...signature.cond },
      push: { file: GRAPH_FILES.push, ...signature.push },
      eps: { file: GRAPH_FILES.eps, ...signature.eps },
    },
    source: path.resolve(weightsFile),
  };
  writeWeightsAtomic(path.join(outDir, EXTERNAL_WEIGHTS_FILE), graphs.externalWeights!);
  for (const name of ['cond', 'push', 'eps'] as const) writeFileAtomic(path.join(outDir, GRAPH_FILES[name]), graphs[name]);
  writeFileAtomic(path.join(outDir, MANIFEST_FILE), JSON.stringify(manifest, null, 2) + '\n');
  return manifest;
}

/** Read and check the manifest of an exported folder. */
export function readManifest(dir: string): LoadedManifest {
  const file = path.join(dir, MANIFEST_FILE);
  let json: OnnxManifest;
  try {
    json = JSON.parse(fs.readFileSync(file, 'utf8')) as OnnxManifest;
  } catch (err) {
    throw new Error(`${file}: cannot read the ONNX manifest (${(err as Error).message})`);
  }
  if (json?.format !== FORMAT) throw new Error(`${file}: not a ${FORMAT} manifest (format is ${JSON.stringify(json?.format)})`);
  if (json.version !== FORMAT_VERSION) {
    throw new Error(`${file}: format version ${json.version}, this @causalfusion/onnx reads version ${FORMAT_VERSION}; export the model again`);
  }
  const modelConfig = configFromJson(json.config, `${file} config`);
  const expected = graphSignature(modelConfig.depth);
  for (const name of ['cond', 'push', 'eps'] as const) {
    const g = json.graphs?.[name];
    if (!g || typeof g.file !== 'string') throw new Error(`${file}: graph "${name}" is missing; export the model again`);
    if (JSON.stringify(g.inputs) !== JSON.stringify(expected[name].inputs) || JSON.stringify(g.outputs) !== JSON.stringify(expected[name].outputs)) {
      throw new Error(`${file}: graph "${name}" has inputs/outputs this version does not expect; export the model again`);
    }
  }
  return { ...json, modelConfig };
}
