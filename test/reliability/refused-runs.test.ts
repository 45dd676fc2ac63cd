/**
 * Issue 11, items 2-3, with real processes: impossible runs are refused before round 1, a fragile one is announced,
 * a run in which no round aggregated exits non-zero and says why (stderr and run.json), and sites stop retrying
 * after their attempt budget or give-up time with a last message that says why (exit 1).
 */
import { execFileSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer } from 'node:net';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { runManifestSchema } from '../../coordinator/index.ts';
import { coordinatorArgs, coordinatorUrl, makeConsortium, startCoordinatorProcess, startToySite, startToySites, stopAll, type Consortium, type Proc } from '../support/process-harness.ts';

const procs: Proc[] = [];
let dir = '';
let c: Consortium;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'fedsfda-refused-'));
  c = await makeConsortium(dir, 3);
  return () => rm(dir, { recursive: true, force: true });
});
afterEach(async () => {
  await stopAll(procs.splice(0));
});

async function config(name: string, cfg: object): Promise<string[]> {
  await writeFile(join(dir, name), JSON.stringify({ port: 0, ...cfg }));
  return coordinatorArgs(c, join(dir, name));
}

/** A loopback port nobody listens on. */
async function closedPort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as { port: number }).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

describe('runs refused before round 1', () => {
  it('secure aggregation with minSites below 3', async () => {
    const p = startCoordinatorProcess(await config('secure-2.json', { rounds: 1, minSites: 2, secureAggregation: { clip: 8, maxExamples: 100 } }));
    procs.push(p);
    expect(await p.exited).toBe(1);
    expect(p.lines.join('\n')).toMatch(/secure aggregation needs at least 3 sites in every round, but minSites is 2/);
  }, 120_000);

  it('statistics when the allow-list can never hold 3 sites', async () => {
    const two = join(dir, 'enroll-2.json');
    const e = JSON.parse(await readFile(c.enroll, 'utf8')) as { sites: Record<string, string> };
    delete e.sites['site-3'];
    await writeFile(two, JSON.stringify(e));
    const args = await config('stats.json', { rounds: 1, minSites: 1, statistics: { pixelBound: 1000 } });
    args[args.indexOf('--enroll') + 1] = two;
    const p = startCoordinatorProcess([...args, '--out', join(dir, 'stats-out')]);
    procs.push(p);
    expect(await p.exited).toBe(1);
    expect(p.lines.join('\n')).toMatch(/statistics config block needs at least 3 sites/);
  }, 120_000);
});

describe('runs that did not train', () => {
  it('exits 1 when no round aggregated, says why on stderr and in run.json; the site is released', async () => {
    const out = join(dir, 'failed-run');
    const p = startCoordinatorProcess([...(await config('failing.json', { rounds: 2, minSites: 1 })), '--out', out]);
    procs.push(p);
    const site = startToySite({ url: await coordinatorUrl(p), coordinatorKey: c.coordinatorKey, siteId: 'site-1', identityFile: c.sites[0].identityFile, seed: 1, failFit: true });
    procs.push(site);
    expect(await p.exited).toBe(1);
    expect(await site.exited).toBe(0);
    expect(p.lines.join('\n')).toMatch(/run failed: only 0 of 2 round\(s\) aggregated .*site_error: trainer_failed/);
    expect(p.logs.find((l) => l.code === 'run_failed')).toMatchObject({ level: 50, ok: false, aggregatedRounds: 0 });
    const manifest = runManifestSchema.parse(JSON.parse(await readFile(join(out, 'run.json'), 'utf8')));
    expect(manifest.outcome).toMatchObject({ ok: false, rounds: 2, aggregatedRounds: 0 });
    expect(manifest.outcome?.reason).toMatch(/only 0 of 2/);
  }, 300_000);

  it('announces a secure configuration that tolerates no dropout, and runs it', async () => {
    const p = startCoordinatorProcess(await config('secure-3.json', { rounds: 1, minSites: 3, secureAggregation: { clip: 8, maxExamples: 100 } }));
    procs.push(p);
    const sites = startToySites(c, await coordinatorUrl(p));
    procs.push(...sites);
    expect(await p.exited).toBe(0);
    expect(p.logs.find((l) => l.code === 'secagg_no_dropout_tolerance')).toMatchObject({ level: 40, sites: 3, degree: 2, threshold: 2 });
    for (const s of sites) expect(await s.exited).toBe(0);
  }, 300_000);
});

describe('sites that cannot reach a coordinator', () => {
  it('log every retry with its typed cause and give up after --max-attempts (exit 1)', async () => {
    const port = await closedPort();
    const site = startToySite({ url: `http://127.0.0.1:${port}`, coordinatorKey: c.coordinatorKey, siteId: 'site-1', identityFile: c.sites[0].identityFile, seed: 1, maxAttempts: 3, initialDelayMs: 50, maxDelayMs: 100 });
    procs.push(site);
    expect(await site.exited).toBe(1);
    const retries = site.logs.filter((l) => l.code === 'connection_refused');
    expect(retries.map((l) => [l.level, l.attempt])).toEqual([[40, 1], [40, 2]]);
    const last = site.logs.at(-1)!;
    expect(last).toMatchObject({ level: 50, code: 'gave_up', attempts: 3, lastCode: 'connection_refused' });
    expect(last.msg).toMatch(/gave up after 3 consecutive failed attempts/);
  }, 120_000);

  it('give up after the configured time without a coordinator', async () => {
    const port = await closedPort();
    const site = startToySite({ url: `http://127.0.0.1:${port}`, coordinatorKey: c.coordinatorKey, siteId: 'site-1', identityFile: c.sites[0].identityFile, seed: 1, maxAttempts: 1_000_000, giveUpAfterMs: 1500, initialDelayMs: 100, maxDelayMs: 200 });
    procs.push(site);
    expect(await site.exited).toBe(1);
    expect(site.logs.at(-1)).toMatchObject({ level: 50, code: 'gave_up' });
    expect(site.logs.at(-1)!.msg).toMatch(/s without the coordinator \(give-up time 2 s\)/);
  }, 120_000);

  it("say on every retry that the coordinator's certificate cannot be verified, then give up", async () => {
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', join(dir, 'key.pem'),
      '-out', join(dir, 'cert.pem'), '-subj', '/CN=fedsfda-test', '-addext', 'subjectAltName=IP:127.0.0.1', '-days', '2'], { stdio: 'ignore' });
    const p = startCoordinatorProcess([...(await config('tls.json', { rounds: 1, minSites: 1 })), '--tls-cert', join(dir, 'cert.pem'), '--tls-key', join(dir, 'key.pem')]);
    procs.push(p);
    const url = await coordinatorUrl(p);
    const site = startToySite({ url, coordinatorKey: c.coordinatorKey, siteId: 'site-1', identityFile: c.sites[0].identityFile, seed: 1, maxAttempts: 3, initialDelayMs: 50, maxDelayMs: 100 });
    procs.push(site);
    expect(await site.exited).toBe(1);
    const retries = site.logs.filter((l) => l.code === 'tls_untrusted_certificate');
    expect(retries).toHaveLength(2);
    for (const r of retries) expect(r.msg).toMatch(/cannot verify the coordinator's TLS certificate; retrying in/);
    expect(String(retries[0].err)).toMatch(/self-signed certificate/);
    expect(site.logs.at(-1)).toMatchObject({ code: 'gave_up', lastCode: 'tls_untrusted_certificate' });
  }, 120_000);
});
