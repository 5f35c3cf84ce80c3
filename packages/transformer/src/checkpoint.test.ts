import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { initBackend } from '@causalfusion/backend';
import { configFromJson, makeConfig, officialShapes } from '@causalfusion/config';
import { loadModel, saveModel } from './checkpoint';
import { CausalDiffusionModel } from './model';
import { parseSafetensors, serializeSafetensors } from '@causalfusion/safetensors';
import { readReference, WEIGHTS } from './reference.test-util';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cf-transformer-'));
const manifest = readReference('weights_manifest.json');
const tinyConfig = configFromJson(manifest.model_config, 'manifest');

beforeAll(async () => {
  await initBackend({ backend: 'wasm', quiet: true });
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe('safetensors with the official keys', () => {
  it('the model has exactly the official state_dict keys, shapes and parameter count', () => {
    const model = new CausalDiffusionModel(tinyConfig);
    try {
      const entries = model.stateEntries();
      expect(entries.map((e) => e.key)).toEqual(manifest.tensors.map((t: { key: string }) => t.key));
      expect(entries.map((e) => e.shape)).toEqual(manifest.tensors.map((t: { shape: number[] }) => t.shape));
      expect(model.numParams()).toBe(manifest.num_params);
      // the tfjs-free table (used by the ONNX path) says the same
      expect([...officialShapes(tinyConfig)]).toEqual(entries.map((e) => [e.key, e.shape]));
    } finally {
      model.dispose();
    }
  });

  it('loads the official weights unchanged and saves them back bit for bit (same key order, [out, in] layout)', async () => {
    const model = await loadModel(WEIGHTS, { config: tinyConfig });
    try {
      const original = parseSafetensors(new Uint8Array(fs.readFileSync(WEIGHTS)));
      const sd = model.stateDict();
      for (const [key, t] of original.tensors) {
        expect(sd.get(key)!.shape).toEqual(t.shape);
        expect(Buffer.from(sd.get(key)!.data.buffer).equals(Buffer.from(t.data.buffer))).toBe(true);
      }
      const dir = path.join(tmp, 'saved');
      await saveModel(model, dir);
      const again = await loadModel(dir);
      expect(again.config).toEqual(model.config);
      const sd2 = again.stateDict();
      for (const [key, t] of sd) expect(Buffer.from(sd2.get(key)!.data.buffer).equals(Buffer.from(t.data.buffer))).toBe(true);
      again.dispose();
      // config.json uses the official argument names; the file alone also carries it in its metadata
      expect(JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')).hidden_size).toBe(64);
      fs.renameSync(path.join(dir, 'config.json'), path.join(dir, 'config.bak'));
      const fromFile = await loadModel(path.join(dir, 'model.safetensors'));
      expect(fromFile.config).toEqual(model.config);
      fromFile.dispose();
    } finally {
      model.dispose();
    }
  });

  it('a checkpoint that does not match the config lists missing keys, unexpected keys and shape mismatches', async () => {
    const wrong = makeConfig(null, { ...tinyConfig, depth: 1, hiddenSize: 32 });
    let message = '';
    try {
      await loadModel(WEIGHTS, { config: wrong });
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toContain('does not match the model config');
    expect(message).toMatch(/unexpected keys \(\d+\): blocks\.1\.norm1\.weight/);
    expect(message).toContain('shape mismatches');
    expect(message).toContain('x_proj.weight: checkpoint [64,4], model [32,4]');

    // a missing key
    const file = parseSafetensors(new Uint8Array(fs.readFileSync(WEIGHTS)));
    file.tensors.delete('blocks.0.attn.qkv.weight');
    const f = path.join(tmp, 'missing.safetensors');
    fs.writeFileSync(f, serializeSafetensors(file.tensors));
    await expect(loadModel(f, { config: tinyConfig })).rejects.toThrow('missing keys (1): blocks.0.attn.qkv.weight');
  });

  it('names the fix for files it cannot use', async () => {
    await expect(loadModel(path.join(tmp, 'nope'))).rejects.toThrow('does not exist');
    const lone = path.join(tmp, 'lone');
    fs.mkdirSync(lone);
    fs.copyFileSync(WEIGHTS, path.join(lone, 'w.safetensors'));
    await expect(loadModel(path.join(lone, 'w.safetensors'))).rejects.toThrow('put a config.json beside it');
    const pt = path.join(tmp, 'model.pt');
    fs.writeFileSync(pt, Buffer.from([0x80, 0x02, 0x7d]));
    await expect(loadModel(pt, { config: tinyConfig })).rejects.toThrow('convert it to safetensors first');
    expect(() => configFromJson({ hidden_size: 64, num_heads: 5 })).toThrow('hiddenSize 64 is not divisible by numHeads 5');
    expect(() => configFromJson({ hiden_size: 64 })).toThrow('unknown field "hiden_size"');
    expect(() => makeConfig('CausalFusion-XXL' as never)).toThrow('Unknown model preset "CausalFusion-XXL"');
  });
});

describe('configs', () => {
  it('has the paper presets', () => {
    const xl = makeConfig('CausalFusion-XL');
    expect([xl.depth, xl.hiddenSize, xl.numHeads, xl.patchSize, xl.latentChannels, xl.numCondTokens, xl.trainablePos]).toEqual([32, 1280, 20, 1, 16, 64, true]);
    const h = makeConfig('CausalFusion-H');
    expect([h.depth, h.hiddenSize, h.numHeads]).toEqual([48, 1408, 22]);
    const l = makeConfig('CausalFusion-L');
    expect([l.depth, l.hiddenSize, l.numHeads]).toEqual([24, 1024, 16]);
  });
});
