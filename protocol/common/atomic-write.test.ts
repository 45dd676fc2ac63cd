import { mkdir, mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { appendLineDurable, isAtomicTempFile, removeLeftoverTempFiles, writeFileAtomic } from './atomic-write.ts';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'fedsfda-atomic-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('writeFileAtomic', () => {
  it('creates and replaces a file, leaving no temp file behind', async () => {
    const f = join(dir, 'a.json');
    await writeFileAtomic(f, 'first');
    await writeFileAtomic(f, new Uint8Array([1, 2, 3]));
    expect([...(await readFile(f))]).toEqual([1, 2, 3]);
    expect(await readdir(dir)).toEqual(['a.json']);
  });

  it('applies the mode to a new file', async () => {
    const f = join(dir, 'secret.json');
    await writeFileAtomic(f, '{}', { mode: 0o600 });
    expect((await stat(f)).mode & 0o777).toBe(0o600);
  });

  it('cleans up its temp file when the rename fails, and leaves the target as it was', async () => {
    // The target is a non-empty directory: rename() refuses to replace it, for root as well.
    const target = join(dir, 'occupied');
    await mkdir(target);
    await writeFile(join(target, 'inside'), 'kept');
    await expect(writeFileAtomic(target, 'new')).rejects.toThrow();
    expect(await readFile(join(target, 'inside'), 'utf8')).toBe('kept');
    expect((await readdir(dir)).filter(isAtomicTempFile)).toEqual([]);
  });
});

describe('removeLeftoverTempFiles', () => {
  it("removes a dead writer's temp files and keeps a live writer's and every other file", async () => {
    const dead = spawnSync(process.execPath, ['-e', '']).pid!; // a process that has exited
    const orphan = `.tmp-final-weights.fsws-${dead}-0123abcd`;
    const live = `.tmp-run.json-${process.pid}-89abcdef`;
    for (const f of [orphan, live, 'run.json', '.tmp-not-ours']) await writeFile(join(dir, f), 'x');
    expect(await removeLeftoverTempFiles(dir)).toEqual([orphan]);
    expect((await readdir(dir)).sort()).toEqual(['.tmp-not-ours', live, 'run.json'].sort());
    expect(await removeLeftoverTempFiles(join(dir, 'missing'))).toEqual([]);
  });
});

describe('appendLineDurable', () => {
  it('appends one record per line and refuses a record with a newline', async () => {
    const f = join(dir, 'log.jsonl');
    await appendLineDurable(f, '{"a":1}');
    await appendLineDurable(f, '{"a":2}');
    expect(await readFile(f, 'utf8')).toBe('{"a":1}\n{"a":2}\n');
    await expect(appendLineDurable(f, 'x\ny')).rejects.toThrow(RangeError);
  });
});
