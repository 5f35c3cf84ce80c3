/**
 * The package as npm users get it: `pnpm pack`, install the tarball into a scratch project, then
 * require it from JavaScript and type-check a TypeScript consumer against the shipped .d.ts files.
 */
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

const pkgDir = path.resolve(__dirname, '..');
const tsc = require.resolve('typescript/bin/tsc');

jest.setTimeout(120_000);

it('packs, installs from the tarball and imports in a scratch folder', () => {
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'cf-pack-'));
  try {
    const packOut = execFileSync('pnpm', ['pack', '--pack-destination', scratch], { cwd: pkgDir, encoding: 'utf8' });
    const tarball = fs.readdirSync(scratch).find((f) => f.endsWith('.tgz'));
    expect(tarball).toBeDefined();
    // Only the build output and the README ship; no sources or tests.
    expect(packOut).toMatch(/dist\/index\.js/);
    expect(packOut).toMatch(/dist\/index\.d\.ts/);
    expect(packOut).not.toMatch(/\.test\./);

    fs.writeFileSync(path.join(scratch, 'package.json'), JSON.stringify({ name: 'scratch', private: true }));
    execFileSync('npm', ['install', '--offline', '--no-audit', '--no-fund', `./${tarball}`], { cwd: scratch, stdio: 'pipe' });

    const js = execFileSync(
      process.execPath,
      ['-e', "const d = require('@causalfusion/bpe').trainBPE(['hello hello world'], { vocabSize: 260 }); console.log(d.vocabSize, JSON.stringify(d.decode(d.encode('hello'))))"],
      { cwd: scratch, encoding: 'utf8' },
    );
    expect(js.trim()).toBe('260 "hello"');

    fs.writeFileSync(
      path.join(scratch, 'consumer.ts'),
      "import { BPETokenizer, trainBPE } from '@causalfusion/bpe';\n" +
        "const t: BPETokenizer = trainBPE(['ab ab'], { vocabSize: 257 });\n" +
        'const n: number[] = t.encode("ab");\nexport { n };\n',
    );
    execFileSync(
      process.execPath,
      [tsc, '--noEmit', '--strict', '--module', 'nodenext', '--moduleResolution', 'nodenext', 'consumer.ts'],
      { cwd: scratch, stdio: 'pipe' },
    );
  } finally {
    fs.rmSync(scratch, { recursive: true, force: true });
  }
});
