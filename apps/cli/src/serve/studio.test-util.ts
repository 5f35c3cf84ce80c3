/**
 * Helpers of the studio's tests: the CLI as a child process, PNG pixels, server-sent events, and the check
 * that an edit kept every pixel outside its regenerated tokens.
 */
import { spawn, spawnSync, type ChildProcess } from 'child_process';
import * as path from 'path';
import sharp from 'sharp';
import { readMask } from '../images';

export const CLI = path.resolve(__dirname, '../../dist/cli.js');

export function runCli(args: string[]) {
  return spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8' });
}

/** `causalfusion serve` running as a child process: its URL, what it printed, and how to stop it. */
export interface ServeProcess {
  url: string;
  child: ChildProcess;
  stdout(): string;
  stderr(): string;
  /** SIGTERM (SIGKILL if it is still there 10 s later); resolves with the exit code. */
  stop(): Promise<number | null>;
}

/** Start `causalfusion serve ARGS` and wait for its URL line (printed last, after the models). */
export async function startServe(args: string[]): Promise<ServeProcess> {
  const child = spawn(process.execPath, [CLI, 'serve', ...args]);
  let stdout = '';
  let stderr = '';
  child.stderr!.on('data', (c) => (stderr += c));
  const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    }
    return exited;
  };
  try {
    const url = await new Promise<string>((resolve, reject) => {
      child.stdout!.on('data', (c) => {
        stdout += c;
        const m = /^causalfusion studio: (http:\/\/\S+\/)/m.exec(stdout);
        if (m) resolve(m[1]);
      });
      exited.then((code) => reject(new Error(`serve exited with ${code} before serving: ${stderr}`)));
    });
    return { url, child, stdout: () => stdout, stderr: () => stderr, stop };
  } catch (e) {
    await stop();
    throw e;
  }
}

/** A PNG's gray pixels. */
export async function grayPixels(png: Buffer): Promise<{ data: Buffer; width: number; height: number }> {
  const { data, info } = await sharp(png).toColourspace('b-w').raw().toBuffer({ resolveWithObject: true });
  return { data, width: info.width, height: info.height };
}

/** The bytes of a `data:image/png;base64,...` URL. */
export const fromDataUrl = (url: string) => Buffer.from(url.replace(/^data:[^,]*;base64,/, ''), 'base64');

/** A server-sent-events response, read to its end: the events in order. */
export async function readEvents(res: Response): Promise<{ event: string; data: any }[]> {
  const text = await res.text();
  return text
    .split('\n\n')
    .filter((block) => block.trim())
    .map((block) => ({ event: /^event: (.*)$/m.exec(block)![1], data: JSON.parse(/^data: (.*)$/m.exec(block)![1]) }));
}

/**
 * Check an edit of `original` (a square image at an integer zoom of the model's `size`) under `mask`: every
 * pixel of a kept token is the original's, and some pixels of the regenerated tokens changed. Returns how
 * many tokens were regenerated.
 */
export async function expectKeptPixels(original: Buffer, edited: Buffer, mask: Buffer, size: number, pixelsPerToken: number): Promise<number> {
  const a = await grayPixels(original);
  const b = await grayPixels(edited);
  expect([b.width, b.height]).toEqual([a.width, a.height]);
  const region = await readMask({ name: 'the mask', bytes: mask }, size, pixelsPerToken);
  const grid = size / pixelsPerToken;
  const tokenPixels = (a.width / size) * pixelsPerToken;
  let kept = 0;
  let changed = 0;
  for (let y = 0; y < a.height; y++)
    for (let x = 0; x < a.width; x++) {
      const i = y * a.width + x;
      if (region[Math.floor(y / tokenPixels) * grid + Math.floor(x / tokenPixels)]) changed += a.data[i] !== b.data[i] ? 1 : 0;
      else {
        if (a.data[i] !== b.data[i]) throw new Error(`kept pixel (${x}, ${y}) changed: ${a.data[i]} -> ${b.data[i]}`);
        kept++;
      }
    }
  const regenerated = region.reduce((s, v) => s + v, 0);
  expect(regenerated).toBeGreaterThan(0);
  expect(regenerated).toBeLessThan(region.length);
  expect(kept).toBe((region.length - regenerated) * tokenPixels * tokenPixels);
  expect(changed).toBeGreaterThan(0);
  return regenerated;
}
