/**
 * Checkpoints: `model.safetensors` with the official state_dict key names and layouts (so a checkpoint
 * converted from the official PyTorch `.pt` loads unchanged) plus `config.json` with the official
 * constructor arguments.
 */
import * as fs from 'fs';
import * as path from 'path';
import {
  checkStateDict,
  CONFIG_FILE,
  configFromJson,
  configToJson,
  readConfigFile,
  WEIGHTS_FILE,
  writeModelFolder,
  type ModelConfig,
} from '@causalfusion/config';
import { readSafetensors } from '@causalfusion/safetensors';
import { CausalDiffusionModel } from './model';

export interface LoadModelOptions {
  /** The config to build, when there is no config.json (e.g. a bare converted .safetensors file). */
  config?: ModelConfig;
}

/**
 * Load a model from a folder holding `model.safetensors` + `config.json`, or from a `.safetensors`
 * file (its config from `options.config`, else a `config.json` beside it, else the `config` entry of
 * the file's metadata, which {@link saveModel} writes).
 */
export async function loadModel(location: string, options: LoadModelOptions = {}): Promise<CausalDiffusionModel> {
  if (!fs.existsSync(location))
    throw new Error(`loadModel: ${location} does not exist; give a .safetensors file or a folder with ${WEIGHTS_FILE} and ${CONFIG_FILE}`);
  let weightsFile = location;
  let configFile: string | null = null;
  if (fs.statSync(location).isDirectory()) {
    weightsFile = path.join(location, WEIGHTS_FILE);
    if (!fs.existsSync(weightsFile)) throw new Error(`loadModel: ${location} has no ${WEIGHTS_FILE}`);
    configFile = path.join(location, CONFIG_FILE);
  } else {
    configFile = path.join(path.dirname(location), CONFIG_FILE);
  }
  if (weightsFile.endsWith('.pt') || weightsFile.endsWith('.pth')) {
    throw new Error(`loadModel: ${weightsFile} is a PyTorch pickle; convert it to safetensors first (see the README of @causalfusion/transformer)`);
  }
  const file = readSafetensors(weightsFile);
  let config: ModelConfig;
  if (options.config) config = options.config;
  else if (configFile && fs.existsSync(configFile)) config = readConfigFile(configFile);
  else if (file.metadata.config) {
    let json: unknown;
    try {
      json = JSON.parse(file.metadata.config);
    } catch (err) {
      throw new Error(
        `loadModel: ${weightsFile} metadata: "config" is not JSON (${(err as Error).message.replace(/\s+/g, ' ')}); put a ${CONFIG_FILE} beside it`,
      );
    }
    config = configFromJson(json, `${weightsFile} metadata`);
  } else {
    throw new Error(
      `loadModel: no config for ${weightsFile}: put a ${CONFIG_FILE} beside it (e.g. {"model": "CausalFusion-XL", "num_classes": 1000}) or pass options.config`,
    );
  }
  // before the model is built: a config.json that does not fit the file (depth 65536) must not build a huge model first
  checkStateDict(config, file.tensors, weightsFile);
  const model = new CausalDiffusionModel(config);
  try {
    model.loadStateDict(file.tensors, weightsFile);
  } catch (err) {
    model.dispose();
    throw err;
  }
  return model;
}

/** Write `model.safetensors` (official keys, [out, in] linear weights) and `config.json` into `dir`. */
export async function saveModel(model: CausalDiffusionModel, dir: string): Promise<void> {
  // atomic writes: an interrupted save never leaves a half-written checkpoint
  writeModelFolder(dir, { weights: model.stateDict(), config: configToJson(model.config) });
}
