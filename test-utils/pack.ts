/**
 * Shared by the packages' `pack.test.ts`: the package as npm users get it. `pnpm pack` it, install the
 * tarball into a scratch project with no network, run a JavaScript snippet against it and type-check a
 * TypeScript consumer against the shipped .d.ts files.
 */
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

export interface PackCheck {
  /** The package folder (the one with package.json). */
  pkgDir: string;
  /** A CommonJS snippet run with node in the scratch project; its stdout is returned. */
  js: string;
  /** A TypeScript file that must type-check against the installed package. */
  ts: string;
}

/** Pack, install and use a package; returns the tarball listing and the snippet's output. */
export function packAndUse({ pkgDir, js, ts }: PackCheck): { listing: string; output: string } {
  const tsc = require.resolve('typescript/bin/tsc');
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'cf-pack-'));
  try {
    const listing = execFileSync('pnpm', ['pack', '--pack-destination', scratch], { cwd: pkgDir, encoding: 'utf8' });
    const tarball = fs.readdirSync(scratch).find((f) => f.endsWith('.tgz'));
    if (!tarball) throw new Error(`pnpm pack wrote no tarball for ${pkgDir}`);
    fs.writeFileSync(path.join(scratch, 'package.json'), JSON.stringify({ name: 'scratch', private: true }));
    execFileSync('npm', ['install', '--offline', '--no-audit', '--no-fund', `./${tarball}`], { cwd: scratch, stdio: 'pipe' });
    const output = execFileSync(process.execPath, ['-e', js], { cwd: scratch, encoding: 'utf8' });
    fs.writeFileSync(path.join(scratch, 'consumer.ts'), ts);
    execFileSync(process.execPath, [tsc, '--noEmit', '--strict', '--module', 'nodenext', '--moduleResolution', 'nodenext', 'consumer.ts'], {
      cwd: scratch,
      stdio: 'pipe',
    });
    return { listing, output };
  } finally {
    fs.rmSync(scratch, { recursive: true, force: true });
  }
}
