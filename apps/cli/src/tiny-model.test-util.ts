/**
 * Test helpers: a tiny untrained model folder (28x28 gray images in 7x7 patches, 16 tokens) as the
 * training app exports it, and the CLI run as a child process.
 */
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import sharp from 'sharp';
import { initBackend } from '@causalfusion/backend';
import { CausalDiffusionModel, makeConfig, saveModel } from '@causalfusion/transformer';

export const CLI = path.resolve(__dirname, '../dist/cli.js');

/**
 * Writes model.safetensors + config.json + meta.json into `dir`; returns the parameter count. `geometry`:
 * the image side and patch (default 28x28 in 7x7 patches; the shipped model's is 16 in 4x4 patches).
 */
export async function writeTinyModel(
  dir: string,
  classNames = ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'],
  geometry: { imageSize: number; patchSize: number } = { imageSize: 28, patchSize: 7 },
): Promise<number> {
  await initBackend({ backend: 'wasm', quiet: true });
  const { imageSize, patchSize } = geometry;
  const config = makeConfig(null, {
    inputSize: imageSize,
    patchSize,
    latentChannels: 1,
    hiddenSize: 32,
    depth: 1,
    numHeads: 2,
    numCondTokens: 2,
    numClasses: classNames.length,
  });
  const model = new CausalDiffusionModel(config, { seed: 0 });
  try {
    fs.mkdirSync(dir, { recursive: true });
    await saveModel(model, dir);
    const meta = {
      format: 'causalfusion-model',
      dataset: 'test',
      classNames,
      tokenizer: { kind: 'pixel', imageSize, channels: 1, patchSize, range: [-1, 1] },
      training: { command: 'none: random weights for the tests', steps: 0 },
    };
    fs.writeFileSync(path.join(dir, 'meta.json'), JSON.stringify(meta, null, 2));
    return model.numParams();
  } finally {
    model.dispose();
  }
}

export function runCli(args: string[]) {
  return spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8' });
}

/** A PNG's pixels as gray values. */
export async function readGray(file: string): Promise<{ data: Buffer; width: number; height: number }> {
  const { data, info } = await sharp(file).toColourspace('b-w').raw().toBuffer({ resolveWithObject: true });
  expect(info.channels).toBe(1);
  return { data, width: info.width, height: info.height };
}
