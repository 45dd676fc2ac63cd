/**
 * The deployment path a consortium would follow, through the real CLI and real processes:
 * identities -> allow-list -> initial model -> TLS certificate -> `fedsfda coordinator --out --tls-*` -> three `fedsfda site --ca` agents on dataset
 * folders -> `fedsfda site audit` -> a new hospital runs `fedsfda adapt` on the run folder's final model and pooled
 * source statistics. Tiny volumes so that it stays fast.
 */
import { execFile, spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import '@tensorflow/tfjs-backend-cpu';
import type { AuditSummary } from '../site-agent/cli/audit-log.ts';
import { loadModelFromPath } from '../site-agent/model/index.ts';

const run = promisify(execFile);
const cli = fileURLToPath(new URL('../bin/fedsfda.mjs', import.meta.url));
const fedsfda = async (...args: string[]): Promise<string> => (await run(process.execPath, [cli, ...args], { timeout: 600_000 })).stdout;

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

describe('deployment CLI: coordinator + three sites as separate processes, then adaptation at a new site', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fedsfda-deploy-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('trains two rounds, the audit log accounts for every update sent, and the run folder feeds `fedsfda adapt`', async () => {
    const ids = ['site-1', 'site-2', 'site-3'];
    await fedsfda('data', 'build-phantoms', '--out', join(dir, 'data'), '--sites', '3', '--cases', '3', '--dims', '16,16,4', '--classes', '3');
    const coordKey = (await fedsfda('identity', 'new', '--out', join(dir, 'coord.json'))).trim();
    const keys: Record<string, string> = {};
    for (const s of ids) keys[s] = (await fedsfda('identity', 'new', '--out', join(dir, `${s}.json`))).trim();
    await writeFile(join(dir, 'enroll.json'), JSON.stringify({ v: 1, sites: keys, tokens: [{ token: 'a-spare-one-time-token-0123' }] }));
    await fedsfda('identity', 'peers', join(dir, 'enroll.json'), '--out', join(dir, 'peers.json'));
    const peers = JSON.parse(await readFile(join(dir, 'peers.json'), 'utf8')) as { sites: Record<string, string>; tokens?: unknown };
    expect(peers.sites).toEqual(keys);
    expect(peers.tokens).toBeUndefined(); // tokens stay with the coordinator
    await fedsfda('model', 'init', '--out', join(dir, 'model'), '--classes', '3', '--base', '4', '--depth', '1', '--wire-out', join(dir, 'init.fsws'));
    // TLS as in production: a certificate for the coordinator's address, trusted by the sites through --ca.
    await run('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', join(dir, 'tls.key'),
      '-out', join(dir, 'tls.crt'), '-subj', '/CN=fedsfda-test', '-addext', 'subjectAltName=IP:127.0.0.1', '-days', '2']);

    // 3 sites x 3 cases x 4 slices of 16x16 at most: a public bound on the federation's labelled pixels.
    await writeFile(join(dir, 'coordinator.json'), JSON.stringify({
      secureAggregation: { clip: 8, maxExamples: 100 },
      statistics: { pixelBound: 3 * 3 * 4 * 16 * 16 },
    }));
    const runDir = join(dir, 'run');
    const coordinator = start(
      ['coordinator', '--identity', join(dir, 'coord.json'), '--enroll', join(dir, 'enroll.json'), '--init-weights', join(dir, 'init.fsws'),
        '--port', '0', '--rounds', '2', '--min-sites', '3', '--history-out', join(dir, 'history.json'), '--config', join(dir, 'coordinator.json'),
        '--out', runDir, '--tls-cert', join(dir, 'tls.crt'), '--tls-key', join(dir, 'tls.key')],
      /listening on (\S+) \(key ([^)]+)\)/,
    );
    const [, url, printedKey] = await coordinator.firstMatch;
    expect(printedKey).toBe(coordKey);
    expect(url).toMatch(/^https:\/\//);
    const sites = ids.map((s) =>
      start(['site', '--url', url, '--identity', join(dir, `${s}.json`), '--coordinator-key', coordKey, '--site-id', s,
        '--data', join(dir, 'data', s), '--size', '16', '--batch', '4', '--val-fraction', '0.34', '--audit', join(dir, `${s}.audit.jsonl`),
        '--max-attempts', '3', '--ca', join(dir, 'tls.crt'), '--peers', join(dir, 'peers.json')]),
    );
    try {
      expect(await coordinator.exited).toBe(0);
      expect(await Promise.all(sites.map((s) => s.exited))).toEqual([0, 0, 0]);
    } finally {
      coordinator.kill();
      for (const s of sites) s.kill();
    }

    const history = JSON.parse(await readFile(join(dir, 'history.json'), 'utf8')) as { round: number; aggregated: boolean; secureAggregation?: { included: string[] } }[];
    expect(history.map((r) => [r.round, r.aggregated])).toEqual([[1, true], [2, true]]);
    // Secure aggregation with every peer key pinned at the sites (--peers): the coordinator saw only sums.
    for (const r of history) expect(r.secureAggregation?.included.sort()).toEqual(ids);
    const audit = JSON.parse(await fedsfda('site', 'audit', join(dir, 'site-1.audit.jsonl'), '--json')) as AuditSummary;
    expect(audit.sessions[0].coordinatorKey).toBe(coordKey);
    expect(audit.updates.map((u) => u.round)).toEqual([1, 2]);
    for (const u of audit.updates) expect(u.bytes).toBeGreaterThan(1000);
    expect(audit.bytesSent).toBeGreaterThan(audit.updates.reduce((s, u) => s + u.bytes, 0));
    expect(audit.malformedLines).toBe(0);
    // source-stats is a scaled round: its exponent bounds are masked and sent first (audited as source-stats:range).
    expect(audit.statistics.map((x) => x.name).sort()).toEqual(['class-histogram', 'source-stats', 'source-stats:range']);
    for (const x of audit.statistics) expect(x.maskedBytes).toBeGreaterThan(0);

    // The run folder: the final model and the statistics pooled by masked sums over all three sites.
    expect(JSON.parse(await readFile(join(runDir, 'history.json'), 'utf8'))).toHaveLength(2);
    const stats = JSON.parse(await readFile(join(runDir, 'source-stats.json'), 'utf8')) as { numSites: number; numClasses: number };
    expect(stats).toMatchObject({ numSites: 3, numClasses: 3 });
    const hist = JSON.parse(await readFile(join(runDir, 'class-histogram.json'), 'utf8')) as { sites: string[]; pooledPixels: number[] };
    expect(hist.sites.sort()).toEqual(ids);
    expect(hist.pooledPixels.reduce((a, b) => a + b, 0)).toBeGreaterThan(0);
    // A new hospital adapts the coordinator's final weights with the pooled statistics, no source data.
    const adaptOut = join(dir, 'adapted');
    await fedsfda('adapt', '--model', join(runDir, 'final-weights.fsws'), '--source-stats', join(runDir, 'source-stats.json'), '--method', 'adabn',
      '--data', join(dir, 'data', 'site-1', 'imagesTr'), '--eval-labels', join(dir, 'data', 'site-1'), '--size', '16', '--out', adaptOut);
    const adapted = await loadModelFromPath(join(adaptOut, 'model'));
    expect(adapted.config.numClasses).toBe(3);
    adapted.dispose();
  });
});
