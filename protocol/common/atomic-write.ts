/**
 * Crash-safe file replacement: a reader (or a process restarted after `kill -9` or a power cut) sees either the old
 * file or the complete new one, never a prefix. The recipe (POSIX rename is atomic within a directory; fsync makes it
 * durable): write a temp file in the same directory, fsync it, rename it over the target, fsync the directory so the
 * rename itself survives a crash.
 *
 * @example
 * await writeFileAtomic(join(runDir, 'history.json'), JSON.stringify(history));
 */
import { randomBytes } from 'node:crypto';
import { open, readdir, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

export interface AtomicWriteOptions {
  /** File mode of a newly created file (default 0o644; identities and enrollments use 0o600). */
  mode?: number;
}

/** Prefix of the temp files this module writes (a crashed writer leaves one; `isAtomicTempFile` spots them). */
export const ATOMIC_TEMP_PREFIX = '.tmp-';

/** True for a leftover temp file of an interrupted atomic write (safe to delete). */
export function isAtomicTempFile(name: string): boolean {
  return basename(name).startsWith(ATOMIC_TEMP_PREFIX);
}

/** The pid of the process that wrote a temp file (`.tmp-<name>-<pid>-<hex>`), or null for another name. */
function writerPid(name: string): number | null {
  const m = /-(\d+)-[0-9a-f]{8}$/.exec(basename(name));
  return isAtomicTempFile(name) && m ? Number(m[1]) : null;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM'; // exists, owned by someone else
  }
}

/**
 * Delete the temp files that interrupted atomic writes left in `dir` (a writer killed between open and rename):
 * only those whose writer process is gone, so a live writer's file is never pulled away. Returns the names removed.
 * A restarted process calls it on the folders it owns, so a `kill -9` leaves no stray file behind for good.
 */
export async function removeLeftoverTempFiles(dir: string): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw e;
  }
  const removed: string[] = [];
  for (const name of names) {
    const pid = writerPid(name);
    if (pid === null || pid === process.pid || isAlive(pid)) continue;
    await unlink(join(dir, name)).then(
      () => removed.push(name),
      () => {},
    );
  }
  return removed;
}

async function fsyncDirectory(dir: string): Promise<void> {
  let fh;
  try {
    fh = await open(dir, 'r');
    await fh.sync();
  } catch (e) {
    // Some file systems refuse fsync on a directory (EINVAL/EISDIR/EPERM); the rename is still atomic there.
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== 'EINVAL' && code !== 'EISDIR' && code !== 'EPERM' && code !== 'EACCES') throw e;
  } finally {
    await fh?.close();
  }
}

/** Replace `path` with `data` atomically and durably (temp file, fsync, rename, fsync the directory). */
export async function writeFileAtomic(path: string, data: Uint8Array | string, opts: AtomicWriteOptions = {}): Promise<void> {
  const dir = dirname(path);
  const tmp = join(dir, `${ATOMIC_TEMP_PREFIX}${basename(path)}-${process.pid}-${randomBytes(4).toString('hex')}`);
  const fh = await open(tmp, 'wx', opts.mode ?? 0o644);
  try {
    await fh.writeFile(data);
    await fh.sync();
  } catch (e) {
    await fh.close().catch(() => {});
    await unlink(tmp).catch(() => {});
    throw e;
  }
  await fh.close();
  try {
    await rename(tmp, path);
  } catch (e) {
    await unlink(tmp).catch(() => {});
    throw e;
  }
  await fsyncDirectory(dir);
}

/** Append `line` (a newline is added) to `path` and fsync it: one record of an append-only log, durable on return. */
export async function appendLineDurable(path: string, line: string): Promise<void> {
  if (line.includes('\n')) throw new RangeError('appendLineDurable: a record must be a single line');
  const fh = await open(path, 'a', 0o644);
  try {
    await fh.writeFile(`${line}\n`);
    await fh.sync();
  } finally {
    await fh.close();
  }
}
