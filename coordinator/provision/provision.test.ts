import { readFile, rm, stat, mkdtemp, access } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateIdentity, loadIdentity, publicKeyToString } from '../../protocol/identity.ts';
import { certificateHosts, consortiumPaths, createCa, enrollAdd, enrollList, enrollRemove, initConsortium, issueServerCertificate, ProvisionError } from './index.ts';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'fedsfda-provision-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Connects to 127.0.0.1:port trusting `ca`, checking the certificate against `host`; resolves the outcome. */
function handshake(port: number, ca: string, host: string): Promise<'ok' | string> {
  return new Promise((resolve) => {
    const socket = tls.connect({ host: '127.0.0.1', port, ca, ...(host === '127.0.0.1' ? {} : { servername: host }), checkServerIdentity: (_h, cert) => tls.checkServerIdentity(host, cert) }, () => {
      socket.end();
      resolve('ok');
    });
    socket.on('error', (e) => resolve(e.message));
  });
}

async function withTlsServer<T>(cert: string, key: string, f: (port: number) => Promise<T>): Promise<T> {
  const server = tls.createServer({ cert, key }, (s) => s.end());
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  try {
    return await f((server.address() as { port: number }).port);
  } finally {
    await new Promise<void>((r) => server.close(() => r()));
  }
}

const mode = async (f: string): Promise<number> => (await stat(f)).mode & 0o777;

describe('TLS certificates (@peculiar/x509, accepted by Node TLS)', () => {
  it('SANs cover host names and IP addresses; Node accepts both through the CA and refuses other names and CAs', async () => {
    const ca = await createCa('test');
    const server = await issueServerCertificate(ca, ['coordinator.example.org', 'localhost', '127.0.0.1', '::1']);
    expect(certificateHosts(server.cert)).toEqual(['dns:coordinator.example.org', 'dns:localhost', 'ip:127.0.0.1', 'ip:::1']);
    const other = await createCa('other');
    await withTlsServer(server.cert + ca.cert, server.key, async (port) => {
      expect(await handshake(port, ca.cert, '127.0.0.1')).toBe('ok');
      expect(await handshake(port, ca.cert, 'localhost')).toBe('ok');
      expect(await handshake(port, ca.cert, 'coordinator.example.org')).toBe('ok');
      expect(await handshake(port, ca.cert, 'evil.example.org')).toMatch(/does not match certificate's altnames/);
      expect(await handshake(port, other.cert, '127.0.0.1')).toMatch(/self-signed certificate in certificate chain|unable to verify/);
    });
  });

  it('refuses something that is neither a host name nor an IP address', async () => {
    const ca = await createCa('test');
    await expect(issueServerCertificate(ca, ['not a host'])).rejects.toThrow(ProvisionError);
    await expect(issueServerCertificate(ca, [])).rejects.toThrow(/at least one host/);
  });
});

describe('fedsfda consortium init / enroll', () => {
  it('init writes the CA, the coordinator identity, TLS pair, 0600 token and allow-list, and one bundle per site', async () => {
    const c = join(dir, 'c1');
    const r = await initConsortium({ dir: c, name: 'demo', hosts: ['coordinator.example.org', '127.0.0.1'], port: 9443, sites: ['hospital-a', 'hospital-b'] });
    const p = consortiumPaths(c);
    expect(r.consortium.url).toBe('https://coordinator.example.org:9443');
    expect(certificateHosts(await readFile(join(p.coordinator, 'tls.crt'), 'utf8'))).toEqual(['dns:coordinator.example.org', 'ip:127.0.0.1']);
    for (const secret of [join(p.caDir, 'ca.key'), join(p.coordinator, 'tls.key'), join(p.coordinator, 'rest-token'), p.enroll, p.coordinatorIdentity, join(p.site('hospital-a'), 'identity.json')]) {
      expect(await mode(secret)).toBe(0o600);
    }
    expect((await readFile(join(p.coordinator, 'rest-token'), 'utf8')).trim()).toMatch(/^[0-9a-f]{48}$/);
    const coordKey = publicKeyToString((await loadIdentity(p.coordinatorIdentity)).publicKey);
    expect(r.coordinatorKey).toBe(coordKey);
    const enroll = JSON.parse(await readFile(p.enroll, 'utf8')) as { sites: Record<string, string> };
    expect(Object.keys(enroll.sites)).toEqual(['hospital-a', 'hospital-b']);
    for (const s of ['hospital-a', 'hospital-b']) {
      const b = p.site(s);
      expect((await readFile(join(b, 'coordinator.key'), 'utf8')).trim()).toBe(coordKey);
      expect(publicKeyToString((await loadIdentity(join(b, 'identity.json'))).publicKey)).toBe(enroll.sites[s]);
      expect(JSON.parse(await readFile(join(b, 'peers.json'), 'utf8'))).toEqual({ v: 1, sites: enroll.sites });
      expect(await readFile(join(b, 'ca.crt'), 'utf8')).toBe(await readFile(join(p.caDir, 'ca.crt'), 'utf8'));
      const script = await readFile(join(b, 'run-site.sh'), 'utf8');
      expect(script).toContain(`fedsfda site --url https://coordinator.example.org:9443 --identity identity.json --coordinator-key coordinator.key --site-id ${s} --ca ca.crt --peers peers.json`);
      expect(await mode(join(b, 'run-site.sh'))).toBe(0o755);
    }
    await expect(initConsortium({ dir: c, name: 'demo', hosts: ['x.org'], port: 1, sites: [] })).rejects.toThrow(/exists/);
  });

  it('enroll add (new bundle or own key), list and remove keep enroll.json and every peers.json in step', async () => {
    const c = join(dir, 'c2');
    await initConsortium({ dir: c, name: 'demo', hosts: ['127.0.0.1'], port: 8443, sites: ['a'] });
    const p = consortiumPaths(c);
    const added = await enrollAdd(c, 'b');
    expect(added.peersUpdated.sort()).toEqual(['a', 'b']);
    const own = publicKeyToString(generateIdentity().publicKey);
    await enrollAdd(c, 'c', own);
    await expect(access(join(p.site('c'), 'identity.json'))).rejects.toThrow(); // the site keeps its own identity
    expect(await readFile(join(p.site('c'), 'command.txt'), 'utf8')).toContain('--identity <your identity file>');
    await expect(enrollAdd(c, 'b')).rejects.toThrow(/already enrolled/);
    await expect(enrollAdd(c, 'bad id!')).rejects.toThrow(/site id/);
    const list = await enrollList(c);
    expect(list.map((s) => [s.siteId, s.bundle])).toEqual([['a', true], ['b', true], ['c', true]]);
    expect(list[2].publicKey).toBe(own);
    const peersA = JSON.parse(await readFile(join(p.site('a'), 'peers.json'), 'utf8')) as { sites: Record<string, string> };
    expect(Object.keys(peersA.sites)).toEqual(['a', 'b', 'c']);

    await enrollRemove(c, 'b');
    expect((await enrollList(c)).map((s) => s.siteId)).toEqual(['a', 'c']);
    await expect(access(p.site('b'))).rejects.toThrow();
    const peersC = JSON.parse(await readFile(join(p.site('c'), 'peers.json'), 'utf8')) as { sites: Record<string, string> };
    expect(Object.keys(peersC.sites)).toEqual(['a', 'c']);
    await expect(enrollRemove(c, 'b')).rejects.toThrow(/not enrolled/);
    await expect(enrollList(join(dir, 'nowhere'))).rejects.toThrow(/not a consortium folder/);
  });
});
