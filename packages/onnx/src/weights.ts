/**
 * The model's weights without tfjs: the official state_dict key names and shapes a config implies, a
 * check of a weights map against them, and a reader for a model folder (model.safetensors +
 * config.json) that mirrors @causalfusion/transformer's loadModel, so the ONNX path starts without
 * loading tfjs.
 */
import * as fs from 'fs';
import * as path from 'path';
import { readSafetensors, type NamedTensor } from '@causalfusion/safetensors';
import {
  checkStateDict,
  CONFIG_FILE,
  configFromJson,
  officialShapes,
  readConfigFile,
  validateConfig,
  WEIGHTS_FILE,
  type ModelConfig,
} from '@causalfusion/config';

export type Weights = Map<string, NamedTensor>;

/** The official state_dict of a config, in its order: key -> shape (nn.Linear weights are [out, in]). */
export const expectedShapes = officialShapes;

/**
 * Throws unless `weights` holds exactly the official keys of `config` with their shapes; the Error
 * lists the missing keys, the unexpected keys and the shape mismatches (as loadModel does).
 */
export function checkWeights(config: ModelConfig, weights: Weights, where = 'weights'): void {
  validateConfig(config);
  checkStateDict(config, weights, where);
}

export interface ModelFolder {
  config: ModelConfig;
  /** Official key -> {shape, data}, checked against the config. */
  weights: Weights;
  /** The weights file read. */
  weightsFile: string;
}

/** The `config` entry of a weights file's metadata, parsed; an Error naming the file if it is not JSON. */
export function parseMetadataJson(text: string, weightsFile: string): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new Error(`${weightsFile} metadata: "config" is not JSON (${(err as Error).message.replace(/\s+/g, ' ')}); put a ${CONFIG_FILE} beside it`);
  }
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
  else if (file.metadata.config) cfg = configFromJson(parseMetadataJson(file.metadata.config, weightsFile), `${weightsFile} metadata`);
  else throw new Error(`no config for ${weightsFile}: put a ${CONFIG_FILE} beside it (e.g. {"model": "CausalFusion-XL", "num_classes": 1000})`);
  checkWeights(cfg, file.tensors, weightsFile);
  return { config: cfg, weights: file.tensors, weightsFile };
}
