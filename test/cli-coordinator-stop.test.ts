/**
 * A coordinator stopped on purpose is not a failure (issue 10): `fedsfda coordinator`, provisioned by `consortium
 * init` and waiting for its sites, exits 0 on SIGINT (Ctrl-C) or SIGTERM (a supervisor's stop), says how to resume,
 * and frees its port. Run from a directory outside the repository.
 */
import { execFile, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CHILD_PROCESS_BOUND_MS } from './support/bounds.ts';

const cli = fileURLToPath(new URL('../bin/fedsfda.mjs', import.meta.url));
let dir: string;
const env = { ...process.env, NO_COLOR: '1' };

function fedsfda(args: string[], cwd: string): Promise<string> {
  return new Promise((resolve, reject) =>
    execFile(process.execPath, [cli, ...args], { cwd, env, timeout: CHILD_PROCESS_BOUND_MS }, (err, stdout, stderr) => (err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve(stdout))),
  );
}

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port });
    s.once('connect', () => (s.destroy(), resolve(true)));
    s.once('error', () => resolve(false));
  });
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'fedsfda-coordstop-'));
  await fedsfda(['consortium', 'init', '--out', 'consortium', '--host', '127.0.0.1', '--site', 'a', '--site', 'b', '--site', 'c'], dir);
  await fedsfda(['model', 'init', '--out', 'model0', '--classes', '3', '--base', '4', '--depth', '1', '--wire-out', 'init.fsws'], join(dir, 'consortium', 'coordinator'));
}, CHILD_PROCESS_BOUND_MS);
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe.each(['SIGINT', 'SIGTERM'] as const)('fedsfda coordinator stopped by %s while waiting for its sites', (signal) => {
  it('exits 0, says how to resume, and closes its port', async () => {
    const port = await freePort();
    const args = ['coordinator', '--identity', 'identity.json', '--enroll', 'enroll.json', '--config', 'coordinator.json', '--rest-token-file', 'rest-token', '--init-weights', 'init.fsws', '--out', `run-${signal}`, '--port', String(port), '--host', '127.0.0.1'];
    const child = spawn(process.execPath, [cli, ...args], { cwd: join(dir, 'consortium', 'coordinator'), env, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
    await new Promise<void>((resolve, reject) => {
      createInterface({ input: child.stdout }).on('line', (line) => {
        output += `${line}\n`;
        if (/dashboard: /.test(line)) resolve();
      });
      void exited.then((code) => reject(new Error(`coordinator exited (${code}) before listening:\n${output}`)));
    });
    expect(await portOpen(port)).toBe(true);
    child.kill(signal);
    expect(await exited, output).toBe(0);
    expect(output).toContain(`stopped by ${signal} after round 0; restart with the same checkpoint directory to resume`);
    expect(output).toMatch(/"code":"stopping"/);
    expect(await portOpen(port)).toBe(false);
  });
});
