import { spawn, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { copyFileAtomic, makeDirs, OutputPathError, writeFileAtomic, writeFileAtomicWith } from './files';

// Child processes run the built package (`pnpm test` builds before testing), so a hang is a timeout, not a stuck jest.
const DIST = path.resolve(__dirname, '../dist/index.js');
const haveDist = fs.existsSync(DIST);
const itWithDist = haveDist ? it : it.skip;
const haveProc = fs.existsSync('/proc/self') && process.platform === 'linux';

function node(script: string, timeout: number) {
  return spawnSync(process.execPath, ['-e', `const st = require(${JSON.stringify(DIST)});\n${script}`], { encoding: 'utf8', timeout });
}

describe('makeDirs', () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'makedirs-'));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('creates nested folders, returns the first one it made, and accepts existing ones', () => {
    const deep = path.join(dir, 'a', 'b', 'c');
    expect(makeDirs(deep)).toBe(path.join(dir, 'a'));
    expect(fs.statSync(deep).isDirectory()).toBe(true);
    expect(makeDirs(deep)).toBeUndefined();
    expect(makeDirs(path.join(dir, 'a', 'b', 'd'))).toBe(path.join(dir, 'a', 'b', 'd'));
    // relative paths, trailing separators, links to folders
    const cwd = process.cwd();
    try {
      process.chdir(dir);
      expect(makeDirs('rel/x/')).toBe(path.join(fs.realpathSync(dir), 'rel'));
    } finally {
      process.chdir(cwd);
    }
    fs.symlinkSync(path.join(dir, 'a'), path.join(dir, 'link'));
    makeDirs(path.join(dir, 'link', 'e'));
    expect(fs.statSync(path.join(dir, 'a', 'e')).isDirectory()).toBe(true);
  });

  it('refuses a folder under a file, or where a file is, in one line', () => {
    const file = path.join(dir, 'f.txt');
    fs.writeFileSync(file, 'x');
    expect(() => makeDirs(path.join(file, 'sub', 'deeper'))).toThrow(OutputPathError);
    expect(() => makeDirs(path.join(file, 'sub'))).toThrow(
      `cannot create folder ${path.join(file, 'sub')}: ${file} is a file, not a folder; choose another location`,
    );
    expect(() => makeDirs(file)).toThrow(`${file} is a file, not a folder`);
    try {
      makeDirs(path.join(file, 'sub'));
    } catch (e) {
      expect((e as OutputPathError).code).toBe('ENOTDIR');
      expect((e as Error).message).not.toContain('\n');
    }
    expect(fs.readdirSync(dir)).toEqual(['f.txt']);
  });

  it('refuses a broken symbolic link as a folder', () => {
    fs.symlinkSync(path.join(dir, 'nowhere'), path.join(dir, 'dangling'));
    expect(() => makeDirs(path.join(dir, 'dangling', 'x'))).toThrow(/is a broken symbolic link/);
  });

  it('refuses a read-only folder (permission denied) when not root', () => {
    if (process.getuid?.() === 0 || process.platform === 'win32') return; // root writes anywhere
    const ro = path.join(dir, 'ro');
    fs.mkdirSync(ro, { mode: 0o555 });
    expect(() => makeDirs(path.join(ro, 'x'))).toThrow(`permission denied in ${ro}`);
  });

  (haveProc && haveDist ? it : it.skip)('under /proc answers an error within a second instead of hanging (Node 20 mkdirSync recursive loops there)', () => {
    const started = Date.now();
    const r = node(
      `for (const d of ['/proc/causalfusion-x', '/proc/causalfusion-x/y', '/proc/self/causalfusion-x']) {
         try { st.makeDirs(d); console.log('made ' + d); } catch (e) { console.log(e.name + ': ' + e.message); }
       }`,
      10_000,
    );
    expect(r.signal).toBeNull(); // not killed by the timeout
    expect(Date.now() - started).toBeLessThan(10_000);
    const lines = r.stdout.trim().split('\n');
    expect(lines).toHaveLength(3);
    for (const line of lines) expect(line).toMatch(/^OutputPathError: cannot create folder \/proc\/\S+: .*; choose another location$/);
    expect(lines[0]).toBe(
      'OutputPathError: cannot create folder /proc/causalfusion-x: /proc does not accept new files or folders (a virtual file system, or a folder being removed); choose another location',
    );
    // and in this process too, now that it is known not to hang
    const t0 = Date.now();
    expect(() => makeDirs('/proc/causalfusion-x/y')).toThrow(OutputPathError);
    expect(Date.now() - t0).toBeLessThan(1000);
  });
});

describe('atomic writes', () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'atomic-'));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('writes, replaces and copies with no temporary left behind; creates the folder', () => {
    const file = path.join(dir, 'sub', 'out.json');
    writeFileAtomic(file, '{"a":1}\n');
    writeFileAtomic(file, Buffer.from('{"a":2}\n'));
    expect(fs.readFileSync(file, 'utf8')).toBe('{"a":2}\n');
    writeFileAtomicWith(path.join(dir, 'sub', 'w.bin'), (fd) => {
      fs.writeSync(fd, Buffer.from('tail'), 0, 4, 4);
      fs.writeSync(fd, Buffer.from('head'), 0, 4, 0);
    });
    expect(fs.readFileSync(path.join(dir, 'sub', 'w.bin'), 'utf8')).toBe('headtail');
    copyFileAtomic(file, path.join(dir, 'copy', 'c.json'));
    expect(fs.readFileSync(path.join(dir, 'copy', 'c.json'), 'utf8')).toBe('{"a":2}\n');
    expect(fs.readdirSync(path.join(dir, 'sub')).sort()).toEqual(['out.json', 'w.bin']);
    expect(fs.readdirSync(path.join(dir, 'copy'))).toEqual(['c.json']);
    expect(() => copyFileAtomic(path.join(dir, 'missing'), path.join(dir, 'x'))).toThrow(/ENOENT/);
  });

  it('a failing writer leaves the old file and no temporary', () => {
    const file = path.join(dir, 'keep.txt');
    writeFileAtomic(file, 'old');
    expect(() =>
      writeFileAtomicWith(file, (fd) => {
        fs.writeSync(fd, 'half');
        throw new Error('disk on fire');
      }),
    ).toThrow('disk on fire');
    expect(fs.readFileSync(file, 'utf8')).toBe('old');
    expect(fs.readdirSync(dir)).toEqual(['keep.txt']);
  });

  it('bad targets are one-line OutputPathErrors', () => {
    fs.mkdirSync(path.join(dir, 'folder'));
    expect(() => writeFileAtomic(path.join(dir, 'folder'), 'x')).toThrow(
      `cannot write ${path.join(dir, 'folder')}: ${path.join(dir, 'folder')} is a folder; give a file name`,
    );
    fs.writeFileSync(path.join(dir, 'file'), 'x');
    expect(() => writeFileAtomic(path.join(dir, 'file', 'y.png'), 'x')).toThrow(OutputPathError);
    expect(fs.readdirSync(path.join(dir, 'folder'))).toEqual([]);
  });

  itWithDist(
    'a writer killed (SIGKILL) mid-write leaves the old file, or no file, never a half-written one',
    async () => {
      const file = path.join(dir, 'model.bin');
      // the child writes 1 MiB, says so, then blocks mid-write until it is killed
      const script = (target: string) => `
      const fs = require('fs');
      st.writeFileAtomicWith(${JSON.stringify(target)}, (fd) => {
        fs.writeSync(fd, Buffer.alloc(1 << 20, 7));
        process.stdout.write('writing\\n');
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 60000);
        fs.writeSync(fd, Buffer.alloc(1 << 20, 7));
      });`;
      const killMidWrite = (target: string) =>
        new Promise<void>((resolve, reject) => {
          const child = spawn(process.execPath, ['-e', `const st = require(${JSON.stringify(DIST)});${script(target)}`], {
            stdio: ['ignore', 'pipe', 'inherit'],
          });
          const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
          child.stdout.on('data', (d: Buffer) => {
            if (!d.toString().includes('writing')) return;
            // mid-write: the final path must still be the old file (or absent)
            child.kill('SIGKILL');
          });
          child.on('exit', (code, signal) => {
            clearTimeout(timer);
            signal === 'SIGKILL' ? resolve() : reject(new Error(`child exited with ${code}`));
          });
        });
      await killMidWrite(file);
      expect(fs.existsSync(file)).toBe(false); // no old file: no file
      const temporaries = fs.readdirSync(dir);
      expect(temporaries).toHaveLength(1); // the interrupted write stayed at its temporary name
      expect(temporaries[0]).toMatch(/^model\.bin\.tmp-\d+-[0-9a-f]+$/);

      writeFileAtomic(file, 'old');
      await killMidWrite(file);
      expect(fs.readFileSync(file, 'utf8')).toBe('old');
    },
    30_000,
  );

  itWithDist(
    'concurrent writers of one path: every read sees a complete file, and the last one stands',
    async () => {
      const file = path.join(dir, 'out.bin');
      // each writer writes 30 files of 64 KiB..2 MiB: 4-byte length, then its id repeated
      const writer = (id: number) => `
      for (let k = 0; k < 30; k++) {
        const n = (64 << 10) + ((k * 7919 + ${id} * 104729) % (2 << 20));
        const b = Buffer.alloc(4 + n, ${id});
        b.writeUInt32LE(n, 0);
        st.writeFileAtomic(${JSON.stringify(file)}, b);
      }`;
      const valid = (b: Buffer) => b.length >= 4 && b.readUInt32LE(0) === b.length - 4 && b.subarray(4).every((v) => v === b[4]);
      const children = [1, 2, 3, 4].map(
        (id) =>
          new Promise<number | null>((resolve) => {
            const c = spawn(process.execPath, ['-e', `const st = require(${JSON.stringify(DIST)});${writer(id)}`], { stdio: 'inherit' });
            c.on('exit', (code) => resolve(code));
          }),
      );
      let done = false;
      let reads = 0;
      let bad = 0;
      const reader = (async () => {
        while (!done) {
          try {
            if (!valid(fs.readFileSync(file))) bad++;
            reads++;
          } catch (e) {
            if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
          }
          await new Promise((r) => setImmediate(r));
        }
      })();
      const codes = await Promise.all(children);
      done = true;
      await reader;
      expect(codes).toEqual([0, 0, 0, 0]);
      expect(bad).toBe(0);
      expect(reads).toBeGreaterThan(0);
      expect(valid(fs.readFileSync(file))).toBe(true);
      expect(fs.readdirSync(dir)).toEqual(['out.bin']);
    },
    60_000,
  );
});
