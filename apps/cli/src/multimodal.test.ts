import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import sharp from 'sharp';
import { CaptionCodec, CaptionedDataset, initBackend, loadCaptionTokenizer, MultimodalModel, saveMultimodalModel } from '@causalfusion/multimodal';
import { readGray, runCli } from './tiny-model.test-util';
import { tinyCanvasConfig } from '../../../test-utils/multimodal';

jest.setTimeout(120_000);

let tmp: string;
let model: string;

beforeAll(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cli-multimodal-'));
  model = path.join(tmp, 'model');
  await initBackend({ backend: 'wasm', quiet: true });
  const tokenizer = loadCaptionTokenizer();
  const m = new MultimodalModel(tinyCanvasConfig(tokenizer.vocabSize, 1), { seed: 0 });
  saveMultimodalModel(m, model, new CaptionCodec(tokenizer, 18));
  m.dispose();
  const item = new CaptionedDataset({ split: 'heldout', count: 1 }).get(0);
  await sharp(Buffer.from(item.image), { raw: { width: 32, height: 16, channels: 1 } })
    .png()
    .toFile(path.join(tmp, 'scene.png'));
  await sharp(Buffer.alloc(28 * 28), { raw: { width: 28, height: 28, channels: 1 } })
    .png()
    .toFile(path.join(tmp, 'digit.png'));
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe('causalfusion generate / caption (tiny random model)', () => {
  it('generate writes a row of images; the same seed gives the same images', async () => {
    const args = [
      'generate',
      '--model',
      model,
      '--prompt',
      'a large 3 to the left of a small eight',
      '--num',
      '3',
      '--ar-steps',
      '4',
      '--steps',
      '5',
      '--zoom',
      '1',
    ];
    const a = runCli([...args, '--out', path.join(tmp, 'a.png')]);
    expect(a.stderr).toBe('');
    expect(a.status).toBe(0);
    expect(a.stdout).toMatch(/3 images for "a large 3 to the left of a small eight", 4 AR steps x 5 DDPM steps, CFG 2, seed 0/);
    const img = await readGray(path.join(tmp, 'a.png'));
    expect([img.width, img.height]).toEqual([3 * 32, 16]);
    runCli([...args, '--out', path.join(tmp, 'b.png')]);
    expect((await readGray(path.join(tmp, 'b.png'))).data.equals(img.data)).toBe(true);
  });

  it('caption prints captions (greedy and seeded sampling)', () => {
    const greedy = runCli(['caption', '--model', model, '--input', path.join(tmp, 'scene.png')]);
    expect(greedy.status).toBe(0);
    expect(greedy.stdout.trim().split('\n')).toHaveLength(1);
    const sampled = ['caption', '--model', model, '--input', path.join(tmp, 'scene.png'), '--top-k', '20', '--temperature', '1.5', '--num', '3', '--seed', '4'];
    const s1 = runCli(sampled);
    const s2 = runCli(sampled);
    expect(s1.status).toBe(0);
    expect(s1.stdout.trim().split('\n')).toHaveLength(3);
    expect(s2.stdout).toBe(s1.stdout);
  });

  it('caption reads what generate writes: the zoomed grid (a caption per cell, with its index) and a zoomed --num 1 image', async () => {
    const generate = (extra: string[], out: string) => {
      const r = runCli([
        'generate',
        '--model',
        model,
        '--prompt',
        'a small 3 to the left of a large 1',
        '--ar-steps',
        '2',
        '--steps',
        '3',
        ...extra,
        '--out',
        out,
      ]);
      expect({ status: r.status, error: r.status ? r.stderr : '' }).toEqual({ status: 0, error: '' });
      return out;
    };
    const caption = (file: string) => {
      const r = runCli(['caption', '--model', model, '--input', file]);
      expect({ status: r.status, error: r.status ? r.stderr : '' }).toEqual({ status: 0, error: '' });
      return r;
    };
    // generate's defaults: zoom 2
    const grid = generate(['--num', '2'], path.join(tmp, 'grid.png'));
    expect(await readGray(grid)).toMatchObject({ width: 2 * 64, height: 32 });
    const r = caption(grid);
    expect(r.stderr).toMatch(/^note: --input: .*grid\.png is a row of 2 32x16 images at zoom 2, reduced 2x by block averaging$/m);
    const lines = r.stdout.trim().split('\n');
    expect(lines.map((l) => l.replace(/: .*/, ''))).toEqual(['cell 0', 'cell 1']);
    // each line is the caption of that cell alone, at the model's size (the same images at --zoom 1)
    const flat = generate(['--num', '2', '--zoom', '1'], path.join(tmp, 'grid-1.png'));
    for (let i = 0; i < 2; i++) {
      const cell = path.join(tmp, `cell-${i}.png`);
      await sharp(flat)
        .extract({ left: 32 * i, top: 0, width: 32, height: 16 })
        .png()
        .toFile(cell);
      expect(lines[i]).toBe(`cell ${i}: ${caption(cell).stdout.trim()}`);
    }
    // --num 1 at the default zoom: one image, one caption (as for the same image at zoom 1)
    const one = caption(generate(['--num', '1'], path.join(tmp, 'one.png')));
    expect(one.stdout.trim().split('\n')).toHaveLength(1);
    expect(one.stdout).toBe(caption(generate(['--num', '1', '--zoom', '1'], path.join(tmp, 'one-1.png'))).stdout);
  });

  it("generate's sampling defaults come from the model's meta.json (a flag wins), and a bad one is one line", () => {
    const withSampling = (name: string, sampling: unknown) => {
      const dir = path.join(tmp, name);
      fs.cpSync(model, dir, { recursive: true });
      const meta = JSON.parse(fs.readFileSync(path.join(dir, 'meta.json'), 'utf8'));
      fs.writeFileSync(path.join(dir, 'meta.json'), JSON.stringify({ ...meta, sampling }));
      return dir;
    };
    const own = withSampling('own-defaults', { sampler: 'ddim', arSteps: 1, steps: 2, cfg: 1.5 });
    const run = (extra: string[]) => runCli(['generate', '--model', own, '--prompt', 'a 3', '--num', '1', ...extra, '--out', path.join(tmp, 'own.png')]);
    expect(run([]).stdout).toMatch(/1 AR steps x 2 DDIM steps, CFG 1\.5,/);
    expect(run(['--ar-steps', '2', '--cfg', '1', '--sampler', 'ddpm']).stdout).toMatch(/2 AR steps x 2 DDPM steps, CFG 1,/);
    for (const [sampling, message] of [
      [{ arSteps: 0 }, /meta\.json: "sampling\.arSteps" must be a positive integer, got 0$/m],
      [{ arSteps: 40 }, /meta\.json: "sampling\.arSteps" 40 is more than the model's 32 image tokens; fix it or pass --ar-steps$/m],
      [{ cfg: 0.5 }, /meta\.json: "sampling\.cfg" must be a number >= 1, got 0\.5$/m],
      [{ sampler: 'euler' }, /meta\.json: "sampling\.sampler" must be "ddpm" or "ddim", got "euler"$/m],
    ] as const) {
      const r = runCli(['generate', '--model', withSampling('bad', sampling), '--prompt', 'a 3', '--out', path.join(tmp, 'bad.png')]);
      expect({ status: r.status, lines: r.stderr.trim().split('\n').length }).toEqual({ status: 2, lines: 1 });
      expect(r.stderr).toMatch(message);
      expect(fs.existsSync(path.join(tmp, 'bad.png'))).toBe(false);
    }
  });

  it('one-line errors with exit code 2', () => {
    const cases: [string[], RegExp][] = [
      [['generate', '--model', model, '--prompt', 'a large cat'], /unknown word "cat"; the model knows: /],
      [['generate', '--model', path.join(tmp, 'nope'), '--prompt', 'a 3'], /--model .*nope does not exist/],
      [['generate', '--model', tmp, '--prompt', 'a 3'], /is not a multimodal model folder: model.safetensors is missing/],
      [['generate', '--model', model, '--prompt', 'a 3', '--ar-steps', '40'], /--ar-steps must be an integer from 1 to 32/],
      [['generate', '--model', model, '--prompt', 'a 3', '--sampler', 'euler'], /--sampler must be ddpm or ddim, got "euler"/],
      [['caption', '--model', model, '--input', path.join(tmp, 'digit.png')], /digit.png is 28x28; this model captions 32x16 images/],
      [['caption', '--model', model, '--input', path.join(tmp, 'missing.png')], /--input: .*missing.png does not exist/],
      [['caption', '--model', model, '--input', path.join(tmp, 'scene.png'), '--greedy', '--top-k', '3'], /--greedy cannot be combined/],
      [['caption', '--model', model, '--input', path.join(tmp, 'scene.png'), '--top-p', '2'], /--top-p must be in \(0, 1\]/],
      // limits (issue 19): refused up front, with the limit in the message
      [['generate', '--model', model, '--prompt', 'a 3', '--num', '100000000'], /^error: --num must be an integer from 1 to 256, got "100000000"/],
      [['generate', '--model', model, '--prompt', 'a 3', '--zoom', '17'], /^error: --zoom must be an integer from 1 to 16/],
      [
        ['generate', '--model', model, '--prompt', 'a 3', '--num', '256', '--zoom', '16'],
        /^error: --out: the image would be 131072x256 pixels; PNG holds at most 65535 a side/,
      ],
      [['caption', '--model', model, '--input', path.join(tmp, 'scene.png'), '--num', '65'], /^error: --num: 65 is over the limit of 64/],
      // output paths, checked before the model is loaded
      [
        ['generate', '--model', model, '--prompt', 'a 3', '--out', '/proc/causalfusion-test/g.png'],
        /^error: --out: cannot write \/proc\/causalfusion-test\/g\.png: cannot create folders in \/proc/,
      ],
      [['generate', '--model', model, '--prompt', 'a 3', '--out', tmp], /^error: --out: .* is a folder; give a file name such as/],
      [
        ['generate', '--model', model, '--prompt', 'a 3', '--out', path.join(tmp, 'g.gif')],
        /^error: --out: cannot write \.gif images .*; use a name ending in \.png, \.jpg, \.jpeg or \.webp/,
      ],
    ];
    for (const [args, message] of cases) {
      const r = runCli(args);
      expect(r.status).toBe(2);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr).toMatch(message);
    }
  });
});
