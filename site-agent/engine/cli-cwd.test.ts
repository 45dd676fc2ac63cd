/**
 * The engine must not depend on the working directory: a hospital runs `fedsfda` from wherever its data
 * lives. Runs the real CLI (`doctor`, which loads the engine, registers gradients and probes every backend)
 * from a temporary folder outside the repository.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BACKEND_CANDIDATES } from './select-backend.ts';

const run = promisify(execFile);
const cli = fileURLToPath(new URL('../../bin/fedsfda.mjs', import.meta.url));

describe('engine commands outside the repository root', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fedsfda-cwd-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('`fedsfda doctor --json` run from a temp folder selects a backend and registers gradients', async () => {
    const { stdout } = await run(process.execPath, [cli, 'doctor', '--json'], { cwd: dir, timeout: 120_000, env: { ...process.env, FEDSFDA_BACKEND: '' } });
    const line = stdout.trim().split('\n').at(-1) ?? '';
    const info = JSON.parse(line) as { backend: string; kernels: string; tried: { name: string; ok: boolean }[] };
    expect(BACKEND_CANDIDATES).toContain(info.backend);
    expect(info.tried.find((t) => t.name === 'cpu')?.ok).toBe(true);
    expect(info.tried.find((t) => t.name === 'wasm')?.ok).toBe(true);
    expect(info.kernels).toMatch(info.backend === 'fedsfda-native' ? /compiled plans/ : /op by op/);
  });
});
