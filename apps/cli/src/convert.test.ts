/**
 * Official PyTorch checkpoints without Python, through the command line: `convert` of the official_tiny
 * .pt files (train.py's layout, a bare state_dict, float16) against weights.safetensors, `sample` / `edit`
 * on the converted folders and on the .pt itself (`--model ckpt.pt`), `export official` (read back by
 * torch when python3-torch is installed), and the refusals: one line, exit code 2, nothing written.
 */
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import { resealZip } from '../../../test-utils/zip';
import * as os from 'os';
import * as path from 'path';
import sharp from 'sharp';
import { onnx } from 'onnx-proto';
import { parseSafetensors, readSafetensors, crc32 } from '@causalfusion/safetensors';
import { configFromArgs } from './official';
import { runCli } from './tiny-model.test-util';

jest.setTimeout(180_000);

const REF = path.resolve(__dirname, '../../../../shared/reference/official_tiny');
const reference = readSafetensors(path.join(REF, 'weights.safetensors')).tensors;

/** official_tiny's CausalDiffusionModel arguments (its README, and training_forward.json's model_config). */
const TINY_CONFIG = {
  input_size: 4,
  patch_size: 1,
  latent_channels: 4,
  hidden_size: 64,
  num_cond_tokens: 4,
  depth: 2,
  num_heads: 4,
  num_classes: 10,
  class_dropout_prob: 0.1,
  trainable_pos: true,
};

let tmp: string;
let config: string;
let vae: string;

/** A float32 value rounded to float16 (round to nearest, ties to even), as torch's .half(). */
function roundToHalf(x: number): number {
  if (x === 0 || !Number.isFinite(x)) return x;
  const a = Math.abs(x);
  let e = Math.max(Math.floor(Math.log2(a)), -14);
  if (e > -14 && 2 ** e > a) e--;
  if (2 ** (e + 1) <= a) e++;
  const ulp = 2 ** (e - 10);
  const q = a / ulp;
  const f = Math.floor(q);
  const n = q - f > 0.5 || (q - f === 0.5 && f % 2 === 1) ? f + 1 : f;
  return Math.sign(x) * n * ulp;
}

/**
 * A VAE folder for 4x4x4 latents of 16x16 RGB images (official_tiny's geometry; the reference VAE makes
 * 8x8 ones): encoder = 4x4 average pooling and a 1x1 conv to the moments, decoder = a 4x4 stride-4
 * transposed conv and tanh.
 */
function tinyVae(dir: string): void {
  const FLOAT = onnx.TensorProto.DataType.FLOAT;
  const INTS = onnx.AttributeProto.AttributeType.INTS;
  const info = (name: string, dims: (number | string)[]) =>
    onnx.ValueInfoProto.create({
      name,
      type: { tensorType: { elemType: FLOAT, shape: { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) } } },
    });
  const tensor = (name: string, dims: number[], f: (i: number) => number) =>
    onnx.TensorProto.create({ name, dims, dataType: FLOAT, floatData: Array.from({ length: dims.reduce((a, b) => a * b, 1) }, (_, i) => f(i)) });
  const write = (file: string, graph: onnx.IGraphProto) =>
    fs.writeFileSync(file, onnx.ModelProto.encode(onnx.ModelProto.create({ irVersion: 8, opsetImport: [{ domain: '', version: 17 }], graph })).finish());
  fs.mkdirSync(dir, { recursive: true });
  write(path.join(dir, 'enc.onnx'), {
    name: 'tiny_encoder',
    node: [
      {
        opType: 'AveragePool',
        input: ['image'],
        output: ['pooled'],
        attribute: [
          { name: 'kernel_shape', type: INTS, ints: [4, 4] },
          { name: 'strides', type: INTS, ints: [4, 4] },
        ],
      },
      { opType: 'Conv', input: ['pooled', 'W', 'B'], output: ['moments'] },
    ],
    // mean channel c: a mix of R, G, B; logvar -20 (the posterior is its mean)
    initializer: [tensor('W', [8, 3, 1, 1], (i) => (i < 12 ? [1, -0.5, 0.25][(i + Math.floor(i / 3)) % 3] : 0)), tensor('B', [8], (i) => (i < 4 ? 0 : -20))],
    input: [info('image', ['N', 3, 16, 16])],
    output: [info('moments', ['N', 8, 4, 4])],
  });
  write(path.join(dir, 'dec.onnx'), {
    name: 'tiny_decoder',
    node: [
      { opType: 'ConvTranspose', input: ['latent', 'W'], output: ['up'], attribute: [{ name: 'strides', type: INTS, ints: [4, 4] }] },
      { opType: 'Tanh', input: ['up'], output: ['image'] },
    ],
    initializer: [tensor('W', [4, 3, 4, 4], (i) => Math.sin(i * 0.37) * 0.5)],
    input: [info('latent', ['N', 4, 4, 4])],
    output: [info('image', ['N', 3, 16, 16])],
  });
  const r = runCli([
    'vae',
    'init',
    '--encoder',
    path.join(dir, 'enc.onnx'),
    '--decoder',
    path.join(dir, 'dec.onnx'),
    '--out',
    dir,
    '--name',
    'tiny-4x4',
    '--scale',
    '0.2325',
  ]);
  expect(r.stderr).toBe('');
  expect(r.stdout).toMatch(/tiny-4x4, 16x16 RGB -> 4x4x4 latents \(downsampling 4\)/);
}

function expectWeights(file: string, round: (x: number) => number = (x) => x): void {
  const got = readSafetensors(file).tensors;
  // the official keys, in state_dict order, float32
  expect([...got.keys()]).toEqual([...reference.keys()]);
  for (const [key, t] of reference) {
    const g = got.get(key)!;
    expect([key, g.shape]).toEqual([key, t.shape]);
    let bad = 0;
    for (let i = 0; i < t.data.length; i++) if (g.data[i] !== round(t.data[i])) bad++;
    expect([key, bad]).toEqual([key, 0]);
  }
}

/** A refusal: exit code 2, exactly one line on stderr matching `pattern`, nothing on stdout, `out` not created. */
function expectRefused(r: ReturnType<typeof runCli>, pattern: RegExp, out?: string): void {
  expect(r.stderr).toMatch(pattern);
  expect(r.stderr).toMatch(/^error: [^\n]*\n$/);
  expect(r.status).toBe(2);
  expect(r.stdout).toBe('');
  if (out) expect(fs.existsSync(out)).toBe(false);
}

beforeAll(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cli-convert-'));
  config = path.join(tmp, 'tiny-config.json');
  fs.writeFileSync(config, JSON.stringify(TINY_CONFIG));
  const forward = JSON.parse(fs.readFileSync(path.join(REF, 'training_forward.json'), 'utf8'));
  if (forward.model_config) expect(forward.model_config).toMatchObject(TINY_CONFIG);
  vae = path.join(tmp, 'vae');
  tinyVae(vae);
  // a 16x16 RGB image to edit
  const px = Buffer.alloc(16 * 16 * 3).map((_, i) => (i * 37 + (i % 3) * 80) & 255);
  await sharp(px, { raw: { width: 16, height: 16, channels: 3 } })
    .png()
    .toFile(path.join(tmp, 'input.png'));
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

async function size(file: string): Promise<[number, number, number]> {
  const m = await sharp(file).metadata();
  return [m.width!, m.height!, m.channels!];
}

describe('causalfusion convert', () => {
  it("each official_tiny .pt: the weights equal weights.safetensors (fp16: to fp16 rounding); train.py's model weights on request", () => {
    for (const [file, round] of [
      ['checkpoint_train.pt', undefined],
      ['checkpoint_ema_only.pt', undefined],
      ['checkpoint_fp16.pt', roundToHalf],
    ] as const) {
      const out = path.join(tmp, file.replace('.pt', ''));
      const r = runCli(['convert', '--from', path.join(REF, file), '--out', out, '--config', config]);
      expect(r.stderr).toBe('');
      expect(r.status).toBe(0);
      expect(r.stdout).toMatch(/43 tensors, 125,124 parameters; 4x4x4 in 1x1 patches: 16 tokens/);
      expect(r.stdout).toMatch(
        file === 'checkpoint_train.pt'
          ? /the EMA weights \(float32\)/
          : file === 'checkpoint_fp16.pt'
            ? /the state_dict \(float16\)/
            : /the state_dict \(float32\)/,
      );
      expectWeights(path.join(out, 'model.safetensors'), round);
      expect(JSON.parse(fs.readFileSync(path.join(out, 'config.json'), 'utf8'))).toEqual({ ...TINY_CONFIG, mlp_ratio: 4 });
      const meta = JSON.parse(fs.readFileSync(path.join(out, 'meta.json'), 'utf8'));
      expect(meta).toMatchObject({ format: 'causalfusion-model', classNames: ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'] });
      expect(meta.tokenizer).toEqual({ kind: 'latent', latentChannels: 4, latentSize: 4, patchSize: 1 });
      if (file === 'checkpoint_train.pt') expect(meta.training).toMatchObject({ steps: 1, args: { model: 'CausalFusion-tiny', image_size: 16 } });
    }
    // --weights model: train.py's raw weights, one AdamW step (lr 1e-3) from the EMA's
    const out = path.join(tmp, 'raw');
    const r = runCli(['convert', '--from', path.join(REF, 'checkpoint_train.pt'), '--out', out, '--config', config, '--weights', 'model']);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/the model weights \(not the EMA\)/);
    const raw = readSafetensors(path.join(out, 'model.safetensors')).tensors;
    let moved = 0;
    for (const [k, t] of reference) t.data.forEach((v, i) => (moved = Math.max(moved, Math.abs(v - raw.get(k)!.data[i]))));
    expect(moved).toBeGreaterThan(1e-4);
    expect(moved).toBeLessThan(2e-3);
  });

  it('sample and edit use the converted folders (the VAE recorded by --tokenizer, or given to sample); the same images as --model ckpt.pt', async () => {
    const withVae = path.join(tmp, 'with-vae');
    let r = runCli(['convert', '--from', path.join(REF, 'checkpoint_train.pt'), '--out', withVae, '--config', config, '--tokenizer', `vae:${vae}`]);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/VAE .*vae$/m);
    expect(JSON.parse(fs.readFileSync(path.join(withVae, 'meta.json'), 'utf8')).tokenizer).toEqual({
      kind: 'vae',
      dir: vae,
      name: 'tiny-4x4',
      scale: 0.2325,
      latentChannels: 4,
      latentSize: 4,
      imageSize: 16,
      patchSize: 1,
    });
    const flags = ['--class', '3', '7', '--num', '2', '--ar-steps', '4', '--steps', '5', '--zoom', '1', '--threads', '1', '--seed', '5'];
    const grid = (name: string) => path.join(tmp, `${name}.png`);
    r = runCli(['sample', '--model', withVae, ...flags, '--out', grid('a')]);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/4 images \(2 rows of 2; classes 3, 7\), 4 AR steps/);
    expect(await size(grid('a'))).toEqual([2 * 16, 2 * 16, 3]);

    // a folder converted without a VAE: sample says how to give it, then takes it
    const bare = path.join(tmp, 'checkpoint_ema_only');
    expectRefused(
      runCli(['sample', '--model', bare, ...flags, '--out', grid('x')]),
      /does not record its VAE: a latent-space model of 4x4x4 latents; give its VAE with --tokenizer vae:DIR/,
      grid('x'),
    );
    r = runCli(['sample', '--model', bare, '--tokenizer', `vae:${vae}`, ...flags, '--out', grid('b')]);
    expect(r.status).toBe(0);
    expect(fs.readFileSync(grid('b')).equals(fs.readFileSync(grid('a')))).toBe(true);

    // the .pt itself, with its config.json beside it, on both runtimes
    const ptDir = path.join(tmp, 'pt');
    fs.mkdirSync(ptDir);
    const pt = path.join(ptDir, 'checkpoint_train.pt');
    fs.copyFileSync(path.join(REF, 'checkpoint_train.pt'), pt);
    fs.copyFileSync(config, path.join(ptDir, 'config.json'));
    r = runCli(['sample', '--model', pt, '--tokenizer', `vae:${vae}`, ...flags, '--out', grid('c')]);
    expect(r.status).toBe(0);
    expect(r.stderr).toMatch(/model .*checkpoint_train\.pt \(official-checkpoint, 4x4x4/);
    expect(fs.readFileSync(grid('c')).equals(fs.readFileSync(grid('a')))).toBe(true);
    r = runCli(['sample', '--model', pt, '--tokenizer', `vae:${vae}`, ...flags, '--runtime', 'tfjs', '--backend', 'wasm', '--out', grid('d')]);
    expect(r.stderr).not.toMatch(/error/);
    expect(r.status).toBe(0);
    expect(await size(grid('d'))).toEqual([32, 32, 3]);

    // the float16 conversion samples too
    r = runCli(['sample', '--model', path.join(tmp, 'checkpoint_fp16'), '--tokenizer', `vae:${vae}`, ...flags, '--out', grid('e')]);
    expect(r.status).toBe(0);

    // edit: the folder, and the .pt
    for (const model of [withVae, pt]) {
      const edited = path.join(tmp, `edit-${path.basename(model)}.png`);
      r = runCli([
        'edit',
        '--model',
        model,
        '--tokenizer',
        `vae:${vae}`,
        '--input',
        path.join(tmp, 'input.png'),
        '--mask',
        'top',
        '--class',
        '2',
        '--steps',
        '5',
        '--threads',
        '1',
        '--out',
        edited,
      ]);
      expect(r.stderr).not.toMatch(/error/);
      expect(r.status).toBe(0);
      expect(r.stdout).toMatch(/regenerated 8 of 16 tokens/);
      expect(await size(edited)).toEqual([16, 16, 3]);
    }
  });

  it('--model ckpt.pt in info and export onnx; export official writes exactly the official keys in float32', () => {
    const pt = path.join(tmp, 'pt', 'checkpoint_train.pt');
    let r = runCli(['info', '--model', pt]);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/model: .*checkpoint_train\.pt \(a PyTorch checkpoint, read in memory\)/);
    expect(r.stdout).toMatch(/parameters: 125,124/);
    expect(r.stdout).toMatch(/tokenizer:\s+latent, VAE not recorded/);

    const onnxDir = path.join(tmp, 'onnx');
    r = runCli(['export', 'onnx', '--model', pt, '--out', onnxDir]);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(fs.readdirSync(onnxDir).sort()).toEqual(['causalfusion-onnx.json', 'cond.onnx', 'eps.onnx', 'meta.json', 'push.onnx', 'weights.bin']);

    for (const model of [path.join(tmp, 'checkpoint_train'), pt]) {
      const out = path.join(tmp, `official-${path.basename(model)}.safetensors`);
      r = runCli(['export', 'official', '--model', model, '--out', out]);
      expect(r.stderr).toBe('');
      expect(r.status).toBe(0);
      expect(r.stdout).toMatch(/43 tensors, 125,124 parameters \(float32, the official key names\)/);
      expect(r.stdout).toMatch(/CausalDiffusionModel\(input_size=4, patch_size=1, latent_channels=4, hidden_size=64, .*trainable_pos=True\)/);
      const bytes = fs.readFileSync(out);
      const parsed = parseSafetensors(bytes, out);
      expect(parsed.metadata).toEqual({ format: 'pt' });
      expectWeights(out);
      const header = JSON.parse(bytes.subarray(8, 8 + Number(bytes.readBigUInt64LE(0))).toString('utf8'));
      expect(
        Object.values(header)
          .filter((v) => (v as { dtype?: string }).dtype !== undefined)
          .every((v) => (v as { dtype: string }).dtype === 'F32'),
      ).toBe(true);
    }
  });

  const torchPresent = spawnSync('/usr/bin/python3', ['-c', 'import torch'], { encoding: 'utf8' }).status === 0;
  (torchPresent ? it : it.skip)(
    torchPresent
      ? "export official: PyTorch reads the file as safetensors.torch.load_file would, equal to the .pt's state_dict"
      : 'export official read by PyTorch: SKIPPED, /usr/bin/python3 has no torch',
    () => {
      const out = path.join(tmp, 'official-checkpoint_train.safetensors');
      // safetensors (the Python package) is not installed here: parse its layout by hand, as its loader
      // checks it (8-byte length, JSON header, tensors tiling the data exactly), then compare with torch.load
      const script = `
import json, struct, sys, torch
path, ref = sys.argv[1], sys.argv[2]
b = open(path, "rb").read()
n = struct.unpack("<Q", b[:8])[0]
header = json.loads(b[8:8 + n].decode("utf-8"))
meta = header.pop("__metadata__", {})
assert all(isinstance(k, str) and isinstance(v, str) for k, v in meta.items()), meta
data = b[8 + n:]
pos = 0
for s, e, k in sorted((v["data_offsets"][0], v["data_offsets"][1], k) for k, v in header.items()):
    assert s == pos, (k, s, pos)
    pos = e
assert pos == len(data), (pos, len(data))
sd = {}
for k, v in header.items():
    assert v["dtype"] == "F32", (k, v["dtype"])
    s, e = v["data_offsets"]
    sd[k] = torch.frombuffer(bytearray(data[s:e]), dtype=torch.float32).reshape(v["shape"])
ema = torch.load(ref, map_location="cpu")
assert list(sd.keys()) == list(ema.keys()), "keys differ"
for k, t in ema.items():
    assert t.dtype == torch.float32 and sd[k].shape == t.shape and torch.equal(sd[k], t), k
print("ok", len(sd), sum(t.numel() for t in sd.values()))
`;
      const r = spawnSync('/usr/bin/python3', ['-c', script, out, path.join(REF, 'checkpoint_ema_only.pt')], { encoding: 'utf8' });
      expect(r.stderr).toBe('');
      expect(r.stdout.trim()).toBe('ok 43 125124');
    },
  );

  it('refusals: one line, exit code 2, nothing written', () => {
    const out = path.join(tmp, 'refused');
    const convert = (from: string, ...rest: string[]) => runCli(['convert', '--from', from, '--out', out, ...rest]);
    // legacy (pre-1.6) format, and a file that is no checkpoint at all
    const legacy = path.join(tmp, 'legacy.pt');
    fs.writeFileSync(legacy, Uint8Array.from([0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, ...new Array(40).fill(0)]));
    expectRefused(convert(legacy, '--config', config), /legacy \(non-zip\) PyTorch file; re-save it with torch\.save/, out);
    const text = path.join(tmp, 'notes.pt');
    fs.writeFileSync(text, 'these are notes, not a checkpoint; nothing to see here at all');
    expectRefused(convert(text, '--config', config), /not a zip archive/, out);
    // a pickle naming a foreign global (byte-edited as the reader's own test does): refused, never run
    const evil = path.join(tmp, 'evil.pt');
    const bytes = fs.readFileSync(path.join(REF, 'checkpoint_ema_only.pt'));
    const at = bytes.toString('latin1').indexOf('collections\nOrderedDict\n');
    expect(at).toBeGreaterThan(0);
    bytes.set(Buffer.from('subprocess\nPopenDict__\n', 'latin1'), at);
    fs.writeFileSync(evil, resealZip(bytes, crc32)); // a valid archive, so the reader reaches the pickle
    expectRefused(convert(evil, '--config', config), /names the Python global subprocess\.PopenDict__.*refused, never imported or run/, out);
    expectRefused(runCli(['sample', '--model', evil, '--tokenizer', `vae:${vae}`]), /subprocess\.PopenDict__/);
    // no config: the args name no official preset, or there are no args
    expectRefused(
      convert(path.join(REF, 'checkpoint_train.pt')),
      /no model config: its args name the model "CausalFusion-tiny", not an official preset .*--config config\.json/,
      out,
    );
    expectRefused(
      convert(path.join(REF, 'checkpoint_ema_only.pt')),
      /no model config: it holds no train\.py args \(a bare state_dict\); give the model's config with --config/,
      out,
    );
    expectRefused(
      runCli(['info', '--model', path.join(REF, 'checkpoint_ema_only.pt')]),
      /put the model's config\.json beside it, or convert it once with `causalfusion convert --from .* --config config\.json --out DIR`/,
    );
    // a config that does not match the weights
    const wrong = path.join(tmp, 'wrong.json');
    fs.writeFileSync(wrong, JSON.stringify({ ...TINY_CONFIG, num_classes: 5, depth: 3 }));
    expectRefused(
      convert(path.join(REF, 'checkpoint_fp16.pt'), '--config', wrong),
      /checkpoint_fp16\.pt does not match the model config .* missing keys \(15\): blocks\.2\.norm1\.weight.* shape mismatches \(1\): y_embedder\.embedding_table\.weight: checkpoint \[11,256\], model \[6,256\].* Fix: give the config the checkpoint was trained with \(--config\)\./,
      out,
    );
    // bad flags, a missing file, an output under a file, a VAE of other latents
    expectRefused(convert(path.join(REF, 'checkpoint_train.pt'), '--config', config, '--weights', 'best'), /--weights: expected ema or model, got 'best'/, out);
    expectRefused(convert(path.join(tmp, 'nope.pt'), '--config', config), /--from: .*nope\.pt does not exist/, out);
    expectRefused(convert(path.join(REF, 'checkpoint_train.pt'), '--config', path.join(tmp, 'nope.json')), /--config: .*nope\.json does not exist/, out);
    expectRefused(
      runCli(['convert', '--from', path.join(REF, 'checkpoint_train.pt'), '--config', config, '--out', path.join(legacy, 'x')]),
      /--out: cannot write .*legacy\.pt is a file/,
    );
    expectRefused(
      convert(path.join(REF, 'checkpoint_train.pt'), '--config', config, '--tokenizer', 'pixel'),
      /--tokenizer pixel: .* takes 4x4x4 latents, and images have 1 or 3 channels/,
      out,
    );
    const refVae = path.join(tmp, 'ref-vae');
    const vaeRef = path.resolve(REF, '../vae_tiny');
    expect(
      runCli([
        'vae',
        'init',
        '--encoder',
        path.join(vaeRef, 'encoder.onnx'),
        '--decoder',
        path.join(vaeRef, 'decoder.onnx'),
        '--out',
        refVae,
        '--name',
        'vae-tiny',
        '--scale',
        '0.2325',
      ]).status,
    ).toBe(0);
    expectRefused(
      convert(path.join(REF, 'checkpoint_train.pt'), '--config', config, '--tokenizer', `vae:${refVae}`),
      /the VAE .*ref-vae \(vae-tiny\) makes 4x8x8 latents of 16x16 images, but .* takes 4x4x4/,
      out,
    );
    expectRefused(
      runCli(['export', 'official', '--model', path.join(tmp, 'checkpoint_train'), '--out', path.join(tmp, 'w.bin')]),
      /--out: .*w\.bin does not end in \.safetensors/,
    );
  });
});

describe('the config from train.py args', () => {
  it('an official preset: image_size / 16 is the latent size, num_classes defaults to 1000', () => {
    const xl = configFromArgs({ model: 'CausalFusion-XL', image_size: 256 });
    expect(xl).toMatchObject({ config: { inputSize: 16, hiddenSize: 1280, depth: 32, numHeads: 20, latentChannels: 16, patchSize: 1, numClasses: 1000 } });
    expect(configFromArgs({ model: 'CausalFusion-H', image_size: 512, num_classes: 10 })).toMatchObject({
      config: { inputSize: 32, hiddenSize: 1408, numClasses: 10 },
    });
    expect(configFromArgs({ model: 'CausalFusion-L', image_size: 250 })).toEqual({ reason: expect.stringMatching(/image_size 250, not a multiple of 16/) });
    expect(configFromArgs({ model: 'DiT-XL/2', image_size: 256 })).toEqual({ reason: expect.stringMatching(/"DiT-XL\/2", not an official preset/) });
    expect(configFromArgs(null)).toEqual({ reason: expect.stringMatching(/no train\.py args/) });
  });
});
