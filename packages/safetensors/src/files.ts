/**
 * Output files and folders, safely: every tool of causalfusion-ts writes through these.
 *
 * - `makeDirs(dir)` creates a folder and its missing parents one level at a time. Node 20's
 *   `fs.mkdirSync(dir, { recursive: true })` spins forever where mkdir answers ENOENT for a parent that
 *   exists (under /proc: it retries the parent, gets EEXIST, retries the child, ...); this walks the
 *   path once, so it always ends, and says in one line why a folder cannot be made.
 * - `writeFileAtomic(file, data)` (and `writeFileAtomicWith`, `copyFileAtomic`) write to a temporary
 *   file beside the target (unique per writer), flush it, then rename it over the target: a reader, a
 *   crash or a second writer of the same path only ever sees the old file or a complete new one.
 *
 * Failures are `OutputPathError`s: one line naming the path and the reason (permission denied,
 * read-only, under a file, no space, ...).
 */
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as path from 'path';

/** A folder or file that cannot be created or written; the message is one line naming the path and why. */
export class OutputPathError extends Error {
  override name = 'OutputPathError';
  constructor(
    message: string,
    /** The path that failed (the folder level, or the file). */
    readonly path: string,
    /** The errno code behind it, when there is one (EACCES, EROFS, ENOTDIR, ENOSPC, ...). */
    readonly code?: string,
  ) {
    super(message);
  }
}

type SystemError = NodeJS.ErrnoException & { code: string };

function isSystemError(e: unknown): e is SystemError {
  // not `instanceof Error`: errors from another realm (a vm context, as under jest) fail that
  return typeof e === 'object' && e !== null && typeof (e as NodeJS.ErrnoException).code === 'string' && typeof (e as Error).message === 'string';
}

/** Why an operation in folder `at` failed, in words. */
function reason(e: SystemError, at: string): string {
  switch (e.code) {
    case 'EACCES':
    case 'EPERM':
      return `permission denied in ${at}`;
    case 'EROFS':
      return `${at} is on a read-only file system`;
    case 'ENOSPC':
      return `no space left on the device of ${at}`;
    case 'EDQUOT':
      return `disk quota exceeded in ${at}`;
    case 'ENAMETOOLONG':
      return 'the name is too long';
    case 'ELOOP':
      return `too many levels of symbolic links in ${at}`;
    case 'ENOTDIR':
      return `a part of ${at} is a file, not a folder`;
    case 'EMLINK':
      return `${at} holds too many folders`;
    case 'ENOENT':
      return `${at} does not accept new files or folders (a virtual file system, or a folder being removed)`;
    default:
      return `${e.code} (${e.syscall ?? 'file system'} failed in ${at})`;
  }
}

/** stat that answers undefined for a missing path and throws other errors. */
function statOrUndefined(p: string): fs.Stats | undefined {
  return fs.statSync(p, { throwIfNoEntry: false });
}

/**
 * Create `dir` and any missing parents, one level at a time (never `mkdirSync(..., { recursive })`,
 * which hangs under /proc on Node 20). An existing folder is fine. Throws an `OutputPathError` when a
 * level is a file, cannot be created (permission denied, read-only, virtual file system, no space) or
 * cannot be searched. Returns the first folder it created (undefined when all existed), so a caller
 * that fails later can remove what it made.
 */
export function makeDirs(dir: string): string | undefined {
  const target = path.resolve(dir);
  const fail = (why: string, at: string, code?: string): never => {
    throw new OutputPathError(`cannot create folder ${dir}: ${why}; choose another location`, at, code);
  };
  const stat = (p: string, parent: string): fs.Stats | undefined => {
    try {
      return statOrUndefined(p);
    } catch (e) {
      if (!isSystemError(e)) throw e;
      return fail(reason(e, parent), p, e.code);
    }
  };
  try {
    if (statOrUndefined(target)?.isDirectory()) return undefined;
  } catch {
    // walk the path to say which level is wrong
  }
  const { root } = path.parse(target);
  const parts = target
    .slice(root.length)
    .split(path.sep)
    .filter((p) => p.length > 0);
  let current = root;
  let first: string | undefined;
  for (const part of parts) {
    const parent = current;
    current = path.join(current, part);
    let st = stat(current, parent);
    if (st === undefined) {
      try {
        fs.mkdirSync(current); // one level, no recursion
        first ??= current;
        continue;
      } catch (e) {
        if (!isSystemError(e)) throw e;
        if (e.code !== 'EEXIST') fail(reason(e, parent), current, e.code);
        // made by someone else meanwhile, or a link to nowhere
        st = stat(current, parent);
        if (st === undefined) fail(`${current} is a broken symbolic link`, current, 'EEXIST');
      }
    }
    if (!st!.isDirectory()) fail(`${current} is a file, not a folder`, current, 'ENOTDIR');
  }
  return first;
}

/** The error of a failed write of `file`: an OutputPathError for file-system errors, anything else as is. */
function writeError(file: string, e: unknown, tmp: string): unknown {
  if (!isSystemError(e)) return e;
  const dest = (e as { dest?: string }).dest;
  // errors of the source of a copy (not the file written) pass through
  if (e.path !== undefined && e.path !== tmp && e.path !== file && !(e.syscall === 'copyfile' && dest === tmp)) return e;
  const why = e.code === 'EISDIR' ? `${file} is a folder; give a file name` : `${reason(e, path.dirname(path.resolve(file)))}; choose another location`;
  return new OutputPathError(`cannot write ${file}: ${why}`, file, e.code);
}

/** A fresh temporary name beside `file`, unique per process, thread and call. */
function tempName(file: string): string {
  return `${file}.tmp-${process.pid}-${crypto.randomBytes(6).toString('hex')}`;
}

/**
 * Replace `file` atomically: `create(tmp)` makes the complete new file at a temporary name in the same
 * folder (created as needed), which is then renamed over `file`. On any failure the temporary is removed
 * and `file` is untouched.
 */
function replaceAtomically(file: string, create: (tmp: string) => void): void {
  makeDirs(path.dirname(path.resolve(file)));
  const tmp = tempName(file);
  try {
    create(tmp);
    fs.renameSync(tmp, file);
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    throw writeError(file, e, tmp);
  }
}

/** Write every byte of `data` at the file position (writeSync may write less than asked, e.g. over 2 GB). */
export function writeAll(fd: number, data: Uint8Array, position: number | null = null): void {
  let done = 0;
  while (done < data.length) {
    const n = fs.writeSync(fd, data, done, data.length - done, position === null ? null : position + done);
    if (n <= 0) throw new Error(`write returned ${n}`);
    done += n;
  }
}

/**
 * Write a file atomically with a writer: `fill(fd)` writes into a temporary file beside the target (the
 * folder is created as needed), which is flushed and renamed over `file`. An interrupted or failed write
 * never leaves a half-written `file`; concurrent writers each rename a complete file (the last one wins).
 */
export function writeFileAtomicWith(file: string, fill: (fd: number) => void): void {
  replaceAtomically(file, (tmp) => {
    const fd = fs.openSync(tmp, 'wx');
    try {
      fill(fd);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
  });
}

/**
 * Write any bytes atomically: to a temporary file beside the target, flushed, then renamed over it,
 * so an interrupted write never leaves a half-written file behind.
 */
export function writeFileAtomic(file: string, data: Uint8Array | string): void {
  const bytes = typeof data === 'string' ? Buffer.from(data) : data;
  writeFileAtomicWith(file, (fd) => writeAll(fd, bytes));
}

/** Copy `src` to `dest` atomically (temporary copy beside `dest`, flushed, renamed). */
export function copyFileAtomic(src: string, dest: string): void {
  fs.accessSync(src, fs.constants.R_OK); // a missing source is the caller's error, not the destination's
  replaceAtomically(dest, (tmp) => {
    fs.copyFileSync(src, tmp, fs.constants.COPYFILE_EXCL);
    const fd = fs.openSync(tmp, 'r+');
    try {
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
  });
}

let crcTable: Int32Array | undefined;

/** CRC-32 (zip's polynomial 0xEDB88320). */
export function crc32(bytes: Uint8Array): number {
  if (!crcTable) {
    crcTable = new Int32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c;
    }
  }
  let c = -1;
  for (let i = 0; i < bytes.length; i++) c = crcTable[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return (c ^ -1) >>> 0;
}
