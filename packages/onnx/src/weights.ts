/**
 * The model's weights without tfjs: the official state_dict key names and shapes a config implies, a
 * check of a weights map against them, and a reader for a model folder (model.safetensors +
 * config.json) that mirrors @causalfusion/transformer's loadModel, so the ONNX path starts without
 * loading tfjs.
 */
import * as fs from 'fs';
import * as path from 'path';
import { readSafetensors, type NamedTensor } from '@causalfusion/safetensors';
// The config entry point of @causalfusion/transformer is plain TypeScript; its main entry loads tfjs.
import { configFromJson, derived, validateConfig, type ModelConfig } from '@causalfusion/transformer/config';

export type Weights = Map<string, NamedTensor>;

export const WEIGHTS_FILE = 'model.safetensors';
export const CONFIG_FILE = 'config.json';

/** The official state_dict of a config, in its order: key -> shape (nn.Linear weights are [out, in]). */
export function expectedShapes(config: ModelConfig): Map<string, number[]> {
  const c = config;
  const d = derived(c);
  const D = c.hiddenSize;
  const out = new Map<string, number[]>();
  const linear = (prefix: string, fanIn: number, fanOut: number, bias = true) => {
    out.set(`${prefix}.weight`, [fanOut, fanIn]);
    if (bias) out.set(`${prefix}.bias`, [fanOut]);
  };
  const norm = (prefix: string, n: number) => {
    out.set(`${prefix}.weight`, [n]);
    out.set(`${prefix}.bias`, [n]);
  };
  out.set('pos_embed', [1, d.numTokens, D]);
  out.set('cond_pos_embed', [1, c.numCondTokens, D]);
  linear('x_proj', d.tokenDim, D);
  linear('t_embedder.mlp.0', 256, D);
  linear('t_embedder.mlp.2', D, D);
  out.set('y_embedder.embedding_table.weight', [d.labelRows, c.numCondTokens * D]);
  for (let i = 0; i < c.depth; i++) {
    norm(`blocks.${i}.norm1`, D);
    linear(`blocks.${i}.attn.qkv`, D, 3 * D, false);
    linear(`blocks.${i}.attn.proj`, D, D);
    norm(`blocks.${i}.attn.q_norm`, d.headDim);
    norm(`blocks.${i}.attn.k_norm`, d.headDim);
    norm(`blocks.${i}.norm2`, D);
    linear(`blocks.${i}.mlp.fc1`, D, d.mlpHidden);
    linear(`blocks.${i}.mlp.fc2`, d.mlpHidden, D);
  }
  norm('final_layer.0', D);
  linear('final_layer.1', D, d.tokenDim);
  return out;
}

/**
 * Throws unless `weights` holds exactly the official keys of `config` with their shapes; the Error
 * lists the missing keys, the unexpected keys and the shape mismatches (as loadModel does).
 */
export function checkWeights(config: ModelConfig, weights: Weights, where = 'weights'): void {
  validateConfig(config);
  const expected = expectedShapes(config);
  const missing = [...expected.keys()].filter((k) => !weights.has(k));
  const unexpected = [...weights.keys()].filter((k) => !expected.has(k));
  const mismatched: string[] = [];
  for (const [key, shape] of expected) {
    const t = weights.get(key);
    if (!t) continue;
    const numel = t.shape.reduce((a, b) => a * b, 1);
    if (t.shape.length !== shape.length || t.shape.some((s, i) => s !== shape[i])) {
      mismatched.push(`${key}: checkpoint ${JSON.stringify(t.shape)}, model ${JSON.stringify(shape)}`);
    } else if (t.data.length !== numel) {
      mismatched.push(`${key}: ${t.data.length} values for shape ${JSON.stringify(t.shape)}`);
    }
  }
  if (missing.length || unexpected.length || mismatched.length) {
    const parts = [`${where} does not match the model config (${JSON.stringify(config)}):`];
    if (missing.length) parts.push(`  missing keys (${missing.length}): ${missing.join(', ')}`);
    if (unexpected.length) parts.push(`  unexpected keys (${unexpected.length}): ${unexpected.join(', ')}`);
    if (mismatched.length) parts.push(`  shape mismatches (${mismatched.length}): ${mismatched.join('; ')}`);
    parts.push('  Fix: use the config the checkpoint was trained with (config.json next to model.safetensors).');
    throw new Error(parts.join('\n'));
  }
}

function readConfigFile(file: string): ModelConfig {
  let json: unknown;
  try {
    json = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (err) {
    throw new Error(`${file}: cannot read the model config (${(err as Error).message})`);
  }
  return configFromJson(json, file);
}

export interface ModelFolder {
  config: ModelConfig;
  /** Official key -> {shape, data}, checked against the config. */
  weights: Weights;
  /** The weights file read. */
  weightsFile: string;
}

/**
 * Read a model saved by @causalfusion/transformer's saveModel: a folder with `model.safetensors` and
 * `config.json`, or a `.safetensors` file (config from `config`, else a config.json beside it, else the
 * file's `config` metadata). The weights are checked against the config.
 */
export function readModelFolder(location: string, config?: ModelConfig): ModelFolder {
  if (!fs.existsSync(location)) {
    throw new Error(`${location} does not exist; give a model folder (${WEIGHTS_FILE} + ${CONFIG_FILE}) or a .safetensors file`);
  }
  let weightsFile = location;
  let configFile: string;
  if (fs.statSync(location).isDirectory()) {
    weightsFile = path.join(location, WEIGHTS_FILE);
    if (!fs.existsSync(weightsFile)) throw new Error(`${location} has no ${WEIGHTS_FILE}; a model folder holds ${WEIGHTS_FILE} and ${CONFIG_FILE}`);
    configFile = path.join(location, CONFIG_FILE);
  } else {
    configFile = path.join(path.dirname(location), CONFIG_FILE);
  }
  if (weightsFile.endsWith('.pt') || weightsFile.endsWith('.pth')) {
    throw new Error(`${weightsFile} is a PyTorch pickle; convert it to safetensors first (see the README of @causalfusion/transformer)`);
  }
  const file = readSafetensors(weightsFile);
  let cfg: ModelConfig;
  if (config) cfg = config;
  else if (fs.existsSync(configFile)) cfg = readConfigFile(configFile);
  else if (file.metadata.config) cfg = configFromJson(JSON.parse(file.metadata.config), `${weightsFile} metadata`);
  else throw new Error(`no config for ${weightsFile}: put a ${CONFIG_FILE} beside it (e.g. {"model": "CausalFusion-XL", "num_classes": 1000})`);
  checkWeights(cfg, file.tensors, weightsFile);
  return { config: cfg, weights: file.tensors, weightsFile };
}
