/**
 * Test helpers for sharded runs: reference images, CLI processes run side by side (as a scheduler's shards
 * would), and byte-for-byte folder comparison.
 */
import { spawn } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import sharp from 'sharp';
import { CLI } from './tiny-model.test-util';

/**
 * `count` 28x28 gray "reference" images (seeded noise strokes), named 0000.png ... More than the 128
 * FID-MNIST features, so that both covariances have full rank and the FID is well conditioned.
 */
export async function writeReferenceImages(dir: string, count: number): Promise<void> {
  fs.mkdirSync(dir, { recursive: true });
  let s = 12345;
  const next = () => (s = (s * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  for (let i = 0; i < count; i++) {
    const px = Buffer.alloc(28 * 28);
    for (let p = 0; p < px.length; p++) {
      const x = p % 28,
        y = Math.floor(p / 28);
      const stroke = Math.abs(x - 14 + (y - 14) * (next() - 0.5)) < 3 + 3 * next();
      px[p] = stroke ? 160 + Math.floor(95 * next()) : Math.floor(40 * next());
    }
    await sharp(px, { raw: { width: 28, height: 28, channels: 1 } })
      .png()
      .toFile(path.join(dir, `${String(i).padStart(4, '0')}.png`));
  }
}

export interface Ran {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** A command run to the end without blocking the event loop, so that several run at once. */
export function runAsync(command: string, args: string[], env: NodeJS.ProcessEnv = process.env, cwd?: string): Promise<Ran> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { env, cwd });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (status) => resolve({ status, stdout, stderr }));
  });
}

/** The CLI as a child process, asynchronously. */
export function runCliAsync(args: string[]): Promise<Ran> {
  return runAsync(process.execPath, [CLI, ...args]);
}

/** Exit status 0, or the process's stderr in the failure message. */
export function expectOk(r: Ran): void {
  expect({ status: r.status, stderr: r.status === 0 ? '' : r.stderr }).toEqual({ status: 0, stderr: '' });
}

/**
 * Compare two folders file by file (hidden files included): the same names, and each file the same bytes.
 * Returns the number of files and of bytes compared.
 */
export function expectSameFiles(a: string, b: string): { files: number; bytes: number } {
  const names = fs.readdirSync(a).sort();
  expect(fs.readdirSync(b).sort()).toEqual(names);
  let bytes = 0;
  const differ: string[] = [];
  for (const name of names) {
    const x = fs.readFileSync(path.join(a, name));
    const y = fs.readFileSync(path.join(b, name));
    if (!x.equals(y)) differ.push(name);
    bytes += x.length;
  }
  expect(differ).toEqual([]);
  return { files: names.length, bytes };
}

/** The FID of `eval fid --json` / `eval merge --json`. */
export function fidOf(r: Ran): number {
  expectOk(r);
  return (JSON.parse(r.stdout.trim().split('\n').pop()!) as { fid: number }).fid;
}
