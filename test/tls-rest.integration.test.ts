/**
 * Transport hardening on 127.0.0.1:0: the coordinator over HTTPS/WSS with a certificate made by `openssl` for the
 * test (sites verify it against `tlsCa`; a site that does not trust it gets a named certificate error and the
 * coordinator keeps serving the others), and the REST bearer token (everything but /health refused without it;
 * the global model is downloadable only behind it).
 */
import { execFileSync } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { get as httpsGet } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { startCoordinator, CoordinatorHandle } from '../coordinator/start-coordinator.ts';
import { CoordinatorError } from '../coordinator/index.ts';
import { decodeWeightSet } from '../protocol/tensor-codec.ts';
import { runSite } from '../site-agent/client/run-site.ts';
import { SiteError } from '../site-agent/client/site-session.ts';
import { linearWeights } from './support/least-squares-trainer.ts';
import { linearCoordinator, linearSites } from './support/linear-federation.ts';

let dir: string;
let cert: string;
let key: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'fedsfda-tls-'));
  // A self-signed P-256 certificate for the loopback address (openssl is a system dependency of the tests).
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', join(dir, 'key.pem'),
    '-out', join(dir, 'cert.pem'), '-subj', '/CN=fedsfda-test', '-addext', 'subjectAltName=IP:127.0.0.1', '-days', '2'], { stdio: 'ignore' });
  cert = await readFile(join(dir, 'cert.pem'), 'utf8');
  key = await readFile(join(dir, 'key.pem'), 'utf8');
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

const sites = linearSites(['hospital-a', 'hospital-b'], 10);

async function coordinator(extra: Partial<Parameters<typeof startCoordinator>[0]>): Promise<CoordinatorHandle> {
  const handle = await linearCoordinator(sites, extra);
  cleanups.push(() => handle.close());
  return handle;
}

function httpsJson(url: string, ca: string): Promise<{ status: number; body: unknown }> {
  return new Promise((resolve, reject) => {
    httpsGet(url, { ca }, (res) => {
      let text = '';
      res.on('data', (d: Buffer) => (text += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) }));
    }).on('error', reject);
  });
}

describe('coordinator over TLS', () => {
  it('serves a round to a site that trusts its certificate; an untrusting site gets a certificate error', async () => {
    const coord = await coordinator({ tls: { cert, key } });
    expect(coord.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);

    // Without the CA the self-signed certificate is refused before any application byte is exchanged.
    const untrusting = runSite({
      url: coord.url,
      identity: sites[1].identity,
      coordinatorPublicKey: coord.publicKey,
      siteId: sites[1].id,
      trainer: sites[1].trainer,
      reconnect: { maxAttempts: 1 },
    });
    await expect(untrusting).rejects.toBeInstanceOf(SiteError);
    await expect(untrusting).rejects.toThrow(/certificate/);

    const trusting = await runSite({
      url: coord.url,
      identity: sites[0].identity,
      coordinatorPublicKey: coord.publicKey,
      siteId: sites[0].id,
      trainer: sites[0].trainer,
      tlsCa: cert,
    });
    expect(trusting.rounds).toEqual([1]);
    const history = await coord.done;
    expect(history[0].aggregated).toBe(true);
    expect(await httpsJson(`${coord.url}/health`, cert)).toEqual({ status: 200, body: { ok: true, status: 'up' } });
  });

  it('refuses a key that does not belong to the certificate with a typed error', async () => {
    const other = execFileSync('openssl', ['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:prime256v1'], { encoding: 'utf8' });
    await expect(coordinator({ tls: { cert, key: other } })).rejects.toBeInstanceOf(CoordinatorError);
  });
});

describe('REST bearer token', () => {
  it('keeps /health open and refuses status, history and metrics without the right token', async () => {
    const token = 'a-long-enough-rest-token-0123';
    const coord = await coordinator({ restToken: token, autoStart: false });
    const get = async (path: string, auth?: string): Promise<number> =>
      (await fetch(`${coord.url}${path}`, auth ? { headers: { Authorization: auth } } : {})).status;
    expect(await get('/health')).toBe(200);
    expect(await get('/')).toBe(200); // the dashboard page holds no data; it sends the token from its URL fragment
    for (const path of ['/status', '/rounds', '/metrics']) {
      expect(await get(path)).toBe(401);
      expect(await get(path, 'Bearer wrong-token-wrong-token')).toBe(401);
      expect(await get(path, `Basic ${token}`)).toBe(401);
      expect(await get(path, `Bearer ${token}`)).toBe(200);
    }
    const body = (await (await fetch(`${coord.url}/status`)).json()) as { error: { code: string } };
    expect(body.error.code).toBe('unauthorized');
    // 3 routes x 3 refused attempts + the one above, counted for monitoring.
    const metricsText = await (await fetch(`${coord.url}/metrics`, { headers: { Authorization: `Bearer ${token}` } })).text();
    expect(metricsText).toContain('fedsfda_rest_unauthorized_total 10');
    // The global model, behind the token: the same bytes the coordinator would send a site.
    expect(await get('/model')).toBe(401);
    const res = await fetch(`${coord.url}/model`, { headers: { Authorization: `Bearer ${token}` } });
    expect(res.status).toBe(200);
    expect(res.headers.get('x-fedsfda-round')).toBe('0');
    const weights = decodeWeightSet(new Uint8Array(await res.arrayBuffer()));
    expect(weights).toEqual(linearWeights(new Float32Array(3), 0));
  });

  it('does not serve the model on an open REST surface', async () => {
    const coord = await coordinator({ autoStart: false });
    const res = await fetch(`${coord.url}/model`);
    expect(res.status).toBe(404);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('disabled');
  });

  it('refuses a token shorter than 16 characters at start-up', async () => {
    await expect(coordinator({ restToken: 'short' })).rejects.toThrow(/restToken/);
  });
});
