/**
 * The deployment path a consortium would follow, through the real CLI and real processes:
 * identities -> allow-list -> initial model -> `fedsfda coordinator` -> two `fedsfda site` agents on dataset
 * folders -> `fedsfda site audit`. Tiny volumes so that it stays fast.
 */
import { execFile, spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AuditSummary } from '../site-agent/cli/audit-log.ts';

const run = promisify(execFile);
const cli = fileURLToPath(new URL('../bin/fedsfda.mjs', import.meta.url));
const fedsfda = async (...args: string[]): Promise<string> => (await run(process.execPath, [cli, ...args], { timeout: 120_000 })).stdout;

/** Starts a CLI process; resolves its exit code; `firstMatch` resolves with the first stdout line matching `re`. */
function start(args: string[], re?: RegExp): { exited: Promise<number>; firstMatch: Promise<RegExpMatchArray>; kill: () => void } {
  const child = spawn(process.execPath, [cli, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const firstMatch = new Promise<RegExpMatchArray>((resolve, reject) => {
    const rl = createInterface({ input: child.stdout });
    rl.on('line', (line) => {
      const m = re ? line.match(re) : null;
      if (m) resolve(m);
    });
    child.on('exit', () => reject(new Error(`exited before printing ${String(re)}: ${stderr}`)));
  });
  firstMatch.catch(() => {});
  const exited = new Promise<number>((resolve) => child.on('exit', (code) => resolve(code ?? 1)));
  return { exited, firstMatch, kill: () => child.kill('SIGTERM') };
}

describe('deployment CLI: coordinator + two sites as separate processes', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fedsfda-deploy-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('trains two rounds and the audit log accounts for every update sent', async () => {
    await fedsfda('data', 'build-phantoms', '--out', join(dir, 'data'), '--sites', '2', '--cases', '3', '--dims', '16,16,4', '--classes', '3');
    const coordKey = (await fedsfda('identity', 'new', '--out', join(dir, 'coord.json'))).trim();
    const keys: Record<string, string> = {};
    for (const s of ['site-1', 'site-2']) keys[s] = (await fedsfda('identity', 'new', '--out', join(dir, `${s}.json`))).trim();
    await writeFile(join(dir, 'enroll.json'), JSON.stringify({ v: 1, sites: keys }));
    await fedsfda('model', 'init', '--out', join(dir, 'model'), '--classes', '3', '--base', '4', '--depth', '1', '--wire-out', join(dir, 'init.fsws'));

    const coordinator = start(
      ['coordinator', '--identity', join(dir, 'coord.json'), '--enroll', join(dir, 'enroll.json'), '--init-weights', join(dir, 'init.fsws'),
        '--port', '0', '--rounds', '2', '--min-sites', '2', '--history-out', join(dir, 'history.json')],
      /listening on (\S+) \(key ([^)]+)\)/,
    );
    const [, url, printedKey] = await coordinator.firstMatch;
    expect(printedKey).toBe(coordKey);
    const sites = ['site-1', 'site-2'].map((s) =>
      start(['site', '--url', url, '--identity', join(dir, `${s}.json`), '--coordinator-key', coordKey, '--site-id', s,
        '--data', join(dir, 'data', s), '--size', '16', '--batch', '4', '--val-fraction', '0.34', '--audit', join(dir, `${s}.audit.jsonl`),
        '--max-attempts', '3']),
    );
    try {
      expect(await coordinator.exited).toBe(0);
      expect(await Promise.all(sites.map((s) => s.exited))).toEqual([0, 0]);
    } finally {
      coordinator.kill();
      for (const s of sites) s.kill();
    }

    const history = JSON.parse(await readFile(join(dir, 'history.json'), 'utf8')) as { round: number; aggregated: boolean }[];
    expect(history.map((r) => [r.round, r.aggregated])).toEqual([[1, true], [2, true]]);
    const audit = JSON.parse(await fedsfda('site', 'audit', join(dir, 'site-1.audit.jsonl'), '--json')) as AuditSummary;
    expect(audit.sessions[0].coordinatorKey).toBe(coordKey);
    expect(audit.updates.map((u) => u.round)).toEqual([1, 2]);
    for (const u of audit.updates) expect(u.bytes).toBeGreaterThan(1000);
    expect(audit.bytesSent).toBeGreaterThan(audit.updates.reduce((s, u) => s + u.bytes, 0));
    expect(audit.malformedLines).toBe(0);
  });
});
