/**
 * The studio's server and API without a browser, on the shipped models: results equal the CLI's byte for
 * byte (the same functions run), every error path is a 4xx with the CLI's one-line message, one request at a
 * time per model with a bounded line (429), cancellation when a client leaves, one log line per request.
 */
import * as fs from 'fs';
import * as http from 'http';
import * as net from 'net';
import * as os from 'os';
import * as path from 'path';
import sharp from 'sharp';
import { DEFAULT_MODEL_DIR, readModelFolder } from '../model-folder';
import { parseRuntimeFlags } from '../runtime-flags';
import { SERVE_LIMITS } from './api';
import { loadStudioModels, type StudioModel } from './models';
import { JobQueue } from './queue';
import { createStudio, type Studio } from './server';
import { expectKeptPixels, grayPixels, readEvents, runCli, startServe } from './studio.test-util';

jest.setTimeout(120_000);

let tmp: string;
let studio: Studio;
let models: StudioModel[];
let base: string;
const logs: string[] = [];
/** onnxruntime as the CLI runs it with these flags, so results can be compared byte for byte. */
const RUNTIME = ['--threads', '1', '--workers', '1'];

beforeAll(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cli-serve-'));
  // a --model folder besides the shipped ones (a copy of the shipped class model)
  fs.cpSync(DEFAULT_MODEL_DIR, path.join(tmp, 'digits'), { recursive: true });
  // a line of one: one request runs, one waits, the next is refused
  models = loadStudioModels([path.join(tmp, 'digits')], parseRuntimeFlags({ threads: '1', workers: '1' }), 1);
  studio = createStudio({ models, host: '127.0.0.1', log: (line) => logs.push(line) });
  await new Promise<void>((resolve) => studio.server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(studio.server.address() as net.AddressInfo).port}`;
});
afterAll(async () => {
  await studio?.close();
  fs.rmSync(tmp, { recursive: true, force: true });
});

/** A JSON answer (the API's shapes are checked by the expectations). */
const jsonOf = (res: Response): Promise<any> => res.json();

const json = (route: string, body: unknown, headers: Record<string, string> = {}) =>
  fetch(`${base}${route}`, { method: 'POST', headers: { 'Content-Type': 'application/json', ...headers }, body: JSON.stringify(body) });

async function png(route: string, body: unknown): Promise<Buffer> {
  const res = await json(route, body);
  if (res.status !== 200) throw new Error(`${route}: ${res.status} ${await res.text()}`);
  expect(res.headers.get('content-type')).toBe('image/png');
  return Buffer.from(await res.arrayBuffer());
}

/** Run the CLI and return the file it wrote. */
function cliImage(args: string[], name: string): Buffer {
  const out = path.join(tmp, name);
  const r = runCli([...args, '--out', out]);
  expect({ status: r.status, stderr: r.status ? r.stderr : '' }).toEqual({ status: 0, stderr: '' });
  return fs.readFileSync(out);
}

/** A mask PNG of `size` x `size`: white (regenerate) inside the rectangle, black elsewhere. */
function maskPng(size: number, x0: number, y0: number, x1: number, y1: number): Promise<Buffer> {
  const m = Buffer.alloc(size * size);
  for (let y = y0; y < y1; y++) for (let x = x0; x < x1; x++) m[y * size + x] = 255;
  return sharp(m, { raw: { width: size, height: size, channels: 1 } })
    .png()
    .toBuffer();
}

describe('the studio server (shipped models, no browser)', () => {
  it('serves one self-contained page (no external URL; a policy that allows nothing else) and the model list, never a path', async () => {
    const res = await fetch(`${base}/`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/html/);
    expect(res.headers.get('content-security-policy')).toMatch(/default-src 'none'/);
    const html = await res.text();
    expect(html).toContain('<title>CausalFusion studio</title>');
    expect(html).not.toMatch(/(src|href|action)\s*=\s*["']?(https?:)?\/\//i);
    expect(html).not.toMatch(/url\(\s*["']?(https?:)?\/\/|@import/i);
    expect((await fetch(`${base}/`, { method: 'HEAD' })).status).toBe(200);

    const list = await jsonOf(await fetch(`${base}/api/models`));
    expect(list.models.map((m: { id: string; kind: string }) => `${m.id}:${m.kind}`)).toEqual(['0:class', '1:prompt', '2:class']);
    expect(list.models[2].name).toMatch(/^digits \(mnist/);
    // sample's defaults for the model: its meta.json "sampling" where it has one
    const meta = JSON.parse(fs.readFileSync(path.join(DEFAULT_MODEL_DIR, 'meta.json'), 'utf8'));
    expect(list.models[0].defaults).toEqual({
      steps: meta.sampling?.steps ?? '50',
      sampler: meta.sampling?.sampler ?? 'ddpm',
      cfg: meta.sampling?.cfg ?? 3,
      editCfg: 5,
    });
    expect(list.limits).toMatchObject({ bodyBytes: SERVE_LIMITS.bodyBytes, images: SERVE_LIMITS.images });
    expect(JSON.stringify(list)).not.toContain(tmp);
    expect(JSON.stringify(list)).not.toContain(DEFAULT_MODEL_DIR);
  });

  it("sample: the PNG is the CLI's byte for byte; streamed, one frame per AR step, then the same PNG", async () => {
    const body = { model: '2', class: '3', num: 2, arSteps: 4, steps: '5', seed: 7 };
    const image = await png('/api/sample', body);
    const cli = cliImage(
      ['sample', '--model', path.join(tmp, 'digits'), '--class', '3', '--num', '2', '--ar-steps', '4', '--steps', '5', '--seed', '7', ...RUNTIME],
      'sample.png',
    );
    expect(image.equals(cli)).toBe(true);

    const events = await readEvents(await json('/api/sample', body, { Accept: 'text/event-stream' }));
    const kinds = events.map((e) => e.event);
    expect(kinds.filter((k) => k === 'progress')).toHaveLength(4 * 5);
    expect(events.filter((e) => e.event === 'frame').map((e) => e.data.arStep)).toEqual([1, 2, 3, 4]);
    expect(kinds[kinds.length - 1]).toBe('done');
    const done = events[events.length - 1].data;
    expect(Buffer.from(done.image.split(',')[1], 'base64').equals(image)).toBe(true);
    expect(done.summary).toMatch(/^2 images \(class 3\), 4 AR steps \[4, 4, 4, 4\] x 5 ddim steps, CFG 2, seed 7/);
    // the last frame is the finished image
    const last = events.filter((e) => e.event === 'frame').pop()!.data.image;
    expect((await grayPixels(Buffer.from(last.split(',')[1], 'base64'))).data.equals((await grayPixels(image)).data)).toBe(true);
  });

  it("edit: a painted mask regenerates its tokens, every other pixel is the upload's; the same PNG as the CLI's", async () => {
    const original = await png('/api/sample', { class: 3, num: 1, arSteps: 2, steps: '5' }); // 32x32: the 16x16 model at zoom 2
    const mask = await maskPng(32, 3, 2, 13, 11); // touches tokens (0,0), (0,1), (1,0), (1,1)
    const body = { image: original.toString('base64'), mask: `data:image/png;base64,${mask.toString('base64')}`, class: 5, arSteps: 2, steps: '5', seed: 1 };
    const edited = await png('/api/edit', body);
    expect(await expectKeptPixels(original, edited, mask, 16, 4)).toBe(4);

    fs.writeFileSync(path.join(tmp, 'original.png'), original);
    fs.writeFileSync(path.join(tmp, 'mask.png'), mask);
    const cli = cliImage(
      [
        'edit',
        '--input',
        path.join(tmp, 'original.png'),
        '--mask',
        path.join(tmp, 'mask.png'),
        '--class',
        '5',
        '--ar-steps',
        '2',
        '--steps',
        '5',
        '--seed',
        '1',
        ...RUNTIME,
      ],
      'edit.png',
    );
    expect(edited.equals(cli)).toBe(true);
    // a region name works as --mask does
    const center = await png('/api/edit', { ...body, mask: 'center' });
    expect((await grayPixels(center)).width).toBe(32);
  });

  it("generate and caption with the multimodal model: the CLI's image and caption", async () => {
    const body = { prompt: 'a large 3 to the left of a small 8', num: 1, arSteps: 2, steps: 3, seed: 2 };
    const image = await png('/api/generate', body);
    const cli = cliImage(['generate', '--prompt', body.prompt, '--num', '1', '--ar-steps', '2', '--steps', '3', '--seed', '2'], 'generate.png');
    expect(image.equals(cli)).toBe(true);
    const events = await readEvents(await json('/api/generate', body, { Accept: 'text/event-stream' }));
    expect(events.filter((e) => e.event === 'frame').map((e) => e.data.arStep)).toEqual([1, 2]);

    const res = await json('/api/caption', { model: '1', image: `data:image/png;base64,${image.toString('base64')}` });
    expect(res.status).toBe(200);
    const { captions } = await jsonOf(res);
    const r = runCli(['caption', '--input', path.join(tmp, 'generate.png')]);
    expect(r.status).toBe(0);
    expect(captions).toEqual([[r.stdout.trim()]]);
  });

  it("every bad request is a 4xx with a one-line message (the CLI's for bad flags), and the server stays up", async () => {
    const before = logs.length;
    const digit = (await png('/api/sample', { class: 1, num: 1, steps: '2' })).toString('base64');
    const black = (await maskPng(32, 0, 0, 0, 0)).toString('base64');
    const garbage = Buffer.from('not an image at all').toString('base64');
    const cases: [string, unknown, number, RegExp][] = [
      ['/api/sample', [1], 400, /^\/api\/sample: expected a JSON object of fields \(model, class, /],
      ['/api/sample', { steps: '5', colour: 'red' }, 400, /^unknown field 'colour'; \/api\/sample takes model, class, num/],
      ['/api/sample', { num: { n: 1 } }, 400, /^--num: expected a number or a string, got an object$/],
      ['/api/sample', { clip: 'no' }, 400, /^--clip: expected true or false, got string "no"$/],
      ['/api/sample', { model: '9' }, 400, /^model: unknown model '9'; this studio serves 0 \(mnist/],
      ['/api/sample', { model: '1' }, 400, /^model: 1 \(.*\) is not a class-conditional model; use it with \/api\/generate and \/api\/caption$/],
      ['/api/generate', { model: '0', prompt: 'a 3' }, 400, /is not a text-to-image \+ captioning \(multimodal\) model/],
      ['/api/sample', { class: 'eleven' }, 400, /^--class: unknown class 'eleven'; this mnist model knows 0, 1, /],
      ['/api/sample', { num: 65 }, 400, /^--num: 65 is over the limit of 64; the studio draws at most 64 images a request/],
      ['/api/sample', { class: [1, 2, 3], num: 30 }, 400, /^--num: 3 classes x 30 images = 90 images, over the limit of 64/],
      ['/api/sample', { arSteps: 17 }, 400, /^--ar-steps: 17 AR steps for 16 tokens to generate; use 1 to 16$/],
      ['/api/sample', { steps: 'lots' }, 400, /^--steps: /],
      ['/api/sample', { sampler: 'euler' }, 400, /^--sampler: expected ddpm or ddim, got 'euler'$/],
      ['/api/sample', { cfgInterval: '5' }, 400, /^--cfg-interval: expected lo,hi/],
      ['/api/sample', { zoom: 17 }, 400, /^--zoom: 17 is over the limit of 16$/],
      ['/api/edit', { class: 5 }, 400, /^--input: give the image as base64 or a data: URL/],
      ['/api/edit', { class: 5, image: 'not base64!' }, 400, /^--input: the uploaded image is neither base64 nor a base64 data: URL$/],
      ['/api/edit', { class: 5, image: garbage }, 400, /^--input: cannot read the uploaded image as an image \(/],
      ['/api/edit', { class: 5, image: digit, mask: black }, 400, /^--mask: the uploaded mask is all black; paint the region to regenerate white$/],
      ['/api/edit', { class: 5, image: digit, mask: 'nowhere' }, 400, /^--mask: cannot read the uploaded mask as an image/],
      ['/api/edit', { image: digit }, 400, /^--class: give at least one class$/],
      ['/api/generate', { num: 1 }, 400, /^required option '--prompt <text>' not specified$/],
      ['/api/generate', { prompt: 'a purple 3' }, 400, /^--prompt: unknown words? "purple"/],
      ['/api/generate', { prompt: 'a 3', arSteps: 33 }, 400, /^--ar-steps must be an integer from 1 to 32, got "33"$/],
      ['/api/caption', { image: digit }, 400, /^--input: the uploaded image is 32x32; this model captions 32x16 images/],
      ['/api/caption', { image: digit, greedy: true, topK: 3 }, 400, /^--greedy cannot be combined with --top-k/],
      ['/api/caption', { image: digit, num: 65 }, 400, /^--num: 65 is over the limit of 64$/],
    ];
    for (const [route, body, status, message] of cases) {
      const res = await json(route, body);
      const answer = await jsonOf(res);
      expect({ route, body, status: res.status, error: answer.error }).toEqual({ route, body, status, error: expect.stringMatching(message) });
      expect(answer.error).not.toContain('\n');
    }

    // the same flags on the command line give the same line (exit code 2)
    for (const [flags, body] of [
      [['--num', '0'], { num: 0 }],
      [['--order', 'zigzag'], { order: 'zigzag' }],
      [['--cfg', '0.5'], { cfg: 0.5 }],
      [['--seed', '-1'], { seed: '-1' }],
    ] as const) {
      const r = runCli(['sample', ...flags, '--out', path.join(tmp, 'never.png')]);
      expect(r.status).toBe(2);
      const res = await json('/api/sample', body);
      expect(res.status).toBe(400);
      expect(`error: ${(await jsonOf(res)).error}\n`).toBe(r.stderr);
    }

    // HTTP-level refusals
    const raw = (route: string, init: RequestInit) => fetch(`${base}${route}`, init);
    expect((await raw('/nothing-here', {})).status).toBe(404);
    expect((await raw('/../../etc/passwd', {})).status).toBe(404);
    expect((await raw('/%2e%2e/%2e%2e/etc/passwd', {})).status).toBe(404);
    const get = await raw('/api/sample', {});
    expect([get.status, get.headers.get('allow'), (await jsonOf(get)).error]).toEqual([405, 'POST', 'GET /api/sample: use POST']);
    const form = await raw('/api/sample', { method: 'POST', headers: { 'Content-Type': 'text/plain' }, body: '{}' });
    expect([form.status, (await jsonOf(form)).error]).toEqual([415, '/api/sample takes a JSON body: send Content-Type: application/json']);
    const notJson = await raw('/api/sample', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{"num": 1' });
    expect([notJson.status, (await jsonOf(notJson)).error]).toEqual([400, expect.stringMatching(/^the request body is not JSON \(/)]);

    // bodies over the limit: declared, and streamed without a length
    const big = Buffer.alloc(SERVE_LIMITS.bodyBytes + 1, 0x20);
    const declared = await raw('/api/edit', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: big });
    expect([declared.status, (await jsonOf(declared)).error]).toEqual([
      413,
      `the request body is ${big.length} bytes, over the limit of ${SERVE_LIMITS.bodyBytes} bytes; send a smaller image`,
    ]);
    const chunks = new ReadableStream({
      start(c) {
        for (let i = 0; i < 9; i++) c.enqueue(big.subarray(0, 1024 * 1024));
        c.close();
      },
    });
    const streamed = await raw('/api/edit', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: chunks, duplex: 'half' } as RequestInit);
    expect([streamed.status, (await jsonOf(streamed)).error]).toEqual([
      413,
      `the request body is over the limit of ${SERVE_LIMITS.bodyBytes} bytes; send a smaller image`,
    ]);

    // a loopback studio answers only requests addressed to a loopback name (a DNS-rebinding page cannot reach it)
    const rebinding = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = http.request(`${base}/api/models`, { headers: { Host: 'attacker.example:80' } }, (res) => {
        let body = '';
        res.on('data', (c) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode!, body }));
      });
      req.on('error', reject);
      req.end();
    });
    expect(rebinding).toEqual({
      status: 403,
      body: JSON.stringify({ error: "this studio answers requests to localhost / 127.0.0.1 only, not to 'attacker.example'" }),
    });

    // still up, and it logged one line per request
    expect((await fetch(`${base}/api/models`)).status).toBe(200);
    const lines = logs.slice(before);
    expect(lines).toHaveLength(1 + cases.length + 4 + 10);
    for (const line of lines) expect(line).toMatch(/^\d{4}-\d\d-\d\dT[\d:.]+Z (GET|POST|HEAD) \/\S* (\d{3}|cancelled) \d+ms/);
    expect(lines).toContainEqual(expect.stringMatching(/ POST \/api\/sample 400 \d+ms --seed: expected a non-negative integer, got '-1'$/));
  });

  it('one request at a time per model: a full line is 429; a client that leaves is cancelled, waiting or running', async () => {
    const queue = models[0].queue;
    const waitFor = async (what: () => boolean) => {
      for (let i = 0; i < 500 && !what(); i++) await new Promise((r) => setTimeout(r, 10));
      expect(what()).toBe(true);
    };
    // A: a long run (64 images, 16 AR steps x 1000 diffusion steps), streamed; it is running once its first event arrives
    const a = new AbortController();
    const long = { class: 1, num: 64, arSteps: 16, steps: '1000' };
    const aRes = await fetch(`${base}/api/sample`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Accept: 'text/event-stream' },
      body: JSON.stringify(long),
      signal: a.signal,
    });
    const reader = aRes.body!.getReader();
    await reader.read();
    expect(queue.size).toBe(1);
    // B waits behind it (a streaming client hears its place); C finds the line full
    const b = new AbortController();
    const bRes = await fetch(`${base}/api/sample`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Accept: 'text/event-stream' },
      body: JSON.stringify(long),
      signal: b.signal,
    });
    const bReader = bRes.body!.getReader();
    expect(new TextDecoder().decode((await bReader.read()).value)).toBe('event: queued\ndata: {"position":1}\n\n');
    expect(queue.size).toBe(2);
    const c = await json('/api/sample', { class: 1, num: 1, steps: '2' });
    expect([c.status, (await jsonOf(c)).error]).toEqual([429, expect.stringMatching(/^busy: model 0 is serving a request and 1 more are waiting/)]);
    // B leaves while waiting: its place is free again
    b.abort();
    await waitFor(() => queue.size === 1);
    // D takes it; A leaves while running: the sampler stops between diffusion steps and D runs at once
    const started = Date.now();
    const d = png('/api/sample', { class: 1, num: 1, steps: '2' });
    await waitFor(() => queue.size === 2);
    a.abort();
    await d;
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(queue.size).toBe(0);
    const cancelled = logs.filter((l) => / POST \/api\/sample cancelled /.test(l));
    expect(cancelled).toHaveLength(2);
  });
});

describe('the studio server, failures of its own', () => {
  it('an internal failure is a 500 (plain) or an error event (streamed), and the server goes on', async () => {
    // a model whose runtime fails to start for a reason that is not the request's
    const broken: StudioModel = {
      kind: 'class',
      id: '0',
      name: 'broken',
      folder: readModelFolder(undefined),
      queue: new JobQueue(1),
      denoiser: async () => {
        throw new Error('the backbone fell over');
      },
      close: async () => {},
    };
    const lines: string[] = [];
    const s = createStudio({ models: [broken], host: '127.0.0.1', log: (line) => lines.push(line) });
    await new Promise<void>((resolve) => s.server.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(s.server.address() as net.AddressInfo).port}`;
    try {
      const request = (headers: Record<string, string>) =>
        fetch(`${url}/api/sample`, { method: 'POST', headers: { 'Content-Type': 'application/json', ...headers }, body: '{"num": 1, "steps": "2"}' });
      const plain = await request({});
      expect([plain.status, await jsonOf(plain)]).toEqual([500, { error: 'the backbone fell over' }]);
      const streamed = await request({ Accept: 'text/event-stream' });
      expect(streamed.status).toBe(200);
      expect(await readEvents(streamed)).toEqual([{ event: 'error', data: { error: 'the backbone fell over', status: 500 } }]);
      expect((await fetch(`${url}/api/models`)).status).toBe(200);
      expect(lines.map((l) => l.replace(/^\S+ /, '').replace(/ \d+ms/, ''))).toEqual([
        'POST /api/sample 500 model 0: the backbone fell over',
        'POST /api/sample 200 model 0: 500 the backbone fell over',
        'GET /api/models 200',
      ]);
    } finally {
      await s.close();
    }
  });
});

describe('causalfusion serve (the command)', () => {
  it('bad flags and folders are one line with exit code 2; a busy port too', async () => {
    const bad = (args: string[], message: RegExp) => {
      const r = runCli(['serve', ...args]);
      expect({ status: r.status, stderr: r.stderr }).toEqual({ status: 2, stderr: expect.stringMatching(message) });
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
    };
    bad(['--port', 'http'], /^error: --port: expected 0 to 65535 \(0: any free port\), got 'http'$/m);
    bad(['--port', '70000'], /^error: --port: expected 0 to 65535/);
    bad(['--model', path.join(tmp, 'missing')], /^error: --model: .*missing does not exist$/m);
    bad(['--threads', '0'], /^error: --threads: expected a positive integer, got '0'$/m);
    const taken = net.createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    const port = (taken.address() as net.AddressInfo).port;
    try {
      bad(['--port', String(port)], new RegExp(`^error: --port: ${port} is in use on 127.0.0.1; choose another, or --port 0 for any free one$`, 'm'));
    } finally {
      taken.close();
    }
  });

  it('serves on a free port; a non-loopback --host is warned about; SIGTERM stops it cleanly', async () => {
    const serve = await startServe(['--port', '0', '--host', '0.0.0.0', '--model', path.join(tmp, 'digits')]);
    try {
      expect(serve.stderr()).toMatch(/^warning: --host 0\.0\.0\.0 serves the studio to the network: it has no login/);
      expect(serve.stdout()).toMatch(/^model 2: digits \(mnist, class-conditional\)/m);
      const port = new URL(serve.url).port;
      expect((await fetch(`http://127.0.0.1:${port}/api/models`)).status).toBe(200);
    } finally {
      expect(await serve.stop()).toBe(0);
    }
    expect(serve.stdout()).toMatch(/GET \/api\/models 200 \d+ms/);
    expect(serve.stdout()).toMatch(/SIGTERM: stopping/);
  });
});
