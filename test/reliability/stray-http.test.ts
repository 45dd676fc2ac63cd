/**
 * Nothing a stranger sends over HTTP stops the coordinator (issue 11, item 1): the real `fedsfda coordinator`
 * process receives every kind of stray request before its site connects — the socket.io polling handshake (which
 * once made express and engine.io both answer and killed the process with ERR_HTTP_HEADERS_SENT), polling posts,
 * websocket upgrades on other paths and with bad keys, random paths and methods, a 64 KiB header, garbage bytes,
 * half-open "slowloris" connections — and then still serves a full run to a real site process and exits 0.
 */
import { request } from 'node:http';
import { connect, type Socket } from 'node:net';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { coordinatorArgs, coordinatorUrl, makeConsortium, startCoordinatorProcess, startToySites, stopAll, type Proc } from '../support/process-harness.ts';

const procs: Proc[] = [];
const sockets: Socket[] = [];
let dir = '';
afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  await stopAll(procs.splice(0));
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** One HTTP request; resolves with the status code or the error code (a refused request is fine, a crash is not). */
function httpStatus(url: string, path: string, opts: { method?: string; headers?: Record<string, string>; body?: string } = {}): Promise<number | string> {
  return new Promise((resolve) => {
    const req = request(`${url}${path}`, { method: opts.method ?? 'GET', headers: opts.headers ?? {} }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
      res.on('error', () => resolve('response_error'));
    });
    req.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'));
    req.setTimeout(20_000, () => req.destroy(new Error('timeout')));
    req.end(opts.body);
  });
}

/** Raw bytes on a TCP connection; resolves with what came back before the server closed it (or after `waitMs`). */
function raw(port: number, bytes: string | Buffer, waitMs = 3000): Promise<string> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    let got = '';
    const timer = setTimeout(() => {
      s.destroy();
      resolve(got);
    }, waitMs);
    s.on('data', (d) => (got += d.toString('latin1')));
    s.on('close', () => {
      clearTimeout(timer);
      resolve(got);
    });
    s.on('error', () => {});
    s.write(bytes);
  });
}

describe('stray HTTP traffic', () => {
  it('is answered or refused cleanly, and the coordinator still serves a run', async () => {
    dir = await mkdtemp(join(tmpdir(), 'fedsfda-stray-'));
    const c = await makeConsortium(dir, 1);
    await writeFile(join(dir, 'config.json'), JSON.stringify({ rounds: 2, minSites: 1, port: 0 }));
    const coord = startCoordinatorProcess(coordinatorArgs(c, join(dir, 'config.json')), {
      FEDSFDA_REST_TOKEN: 'a-rest-token-of-32-characters-xx',
    });
    procs.push(coord);
    const url = await coordinatorUrl(coord);
    const port = Number(new URL(url).port);

    // Half-open connections first: they stay open while everything else happens.
    for (let i = 0; i < 20; i++) {
      const s = connect(port, '127.0.0.1');
      s.on('error', () => {});
      s.write('GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ');
      sockets.push(s);
    }
    const statuses = {
      pollingHandshake: await httpStatus(url, '/socket.io/?EIO=4&transport=polling'),
      pollingHandshakeEio3: await httpStatus(url, '/socket.io/?EIO=3&transport=polling&t=N8hyd6w'),
      pollingPost: await httpStatus(url, '/socket.io/?EIO=4&transport=polling&sid=abcdef', { method: 'POST', body: '40' }),
      pollingWithToken: await httpStatus(url, '/socket.io/?EIO=4&transport=polling', { headers: { authorization: 'Bearer a-rest-token-of-32-characters-xx' } }),
      socketIoNoQuery: await httpStatus(url, '/socket.io/'),
      randomPath: await httpStatus(url, '/wp-login.php'),
      traversal: await httpStatus(url, '/../../etc/passwd'),
      statusNoToken: await httpStatus(url, '/status'),
      deleteRounds: await httpStatus(url, '/rounds', { method: 'DELETE' }),
      options: await httpStatus(url, '/', { method: 'OPTIONS' }),
      hugeHeader: await httpStatus(url, '/health', { headers: { 'x-huge': 'a'.repeat(64 * 1024) } }),
    };
    expect(statuses.pollingHandshake).toBe(400);
    expect(statuses.pollingHandshakeEio3).toBe(400);
    expect(statuses.pollingPost).toBe(400);
    expect(statuses.pollingWithToken).toBe(400);
    expect(statuses.randomPath).toBe(401); // the REST token guards every route but /health
    expect(statuses.statusNoToken).toBe(401);
    expect([431, 'ECONNRESET']).toContain(statuses.hugeHeader);
    for (const [k, v] of Object.entries(statuses)) expect(typeof v === 'number' || v === 'ECONNRESET', k).toBe(true);

    const upgradeElsewhere = await raw(port, 'GET /chat HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n');
    expect(upgradeElsewhere).not.toMatch(/101 Switching/);
    const badKey = await raw(port, 'GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: nope\r\n\r\n');
    expect(badKey).not.toMatch(/101 Switching/);
    const pollingUpgrade = await raw(port, 'GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n');
    expect(pollingUpgrade).not.toMatch(/101 Switching/);
    expect(await raw(port, Buffer.from([0x16, 0x03, 0x01, 0x00, 0xff, 0x00, 0xde, 0xad, 0xbe, 0xef, 0x0d, 0x0a, 0x0d, 0x0a]))).toMatch(/^HTTP\/1\.1 400|^$/);
    expect(await raw(port, 'FOO / HTTP/1.1\r\nHost: x\r\n\r\n')).toMatch(/^HTTP\/1\.1 (400|404|401)/);

    // The coordinator is alive and serves a full run to a real site.
    expect(coord.child.exitCode).toBeNull();
    const [site] = startToySites(c, url);
    procs.push(site);
    expect(await site.exited).toBe(0);
    expect(await coord.exited).toBe(0);
    expect(coord.lines.join('\n')).toMatch(/finished 2 round\(s\)/);
    expect(coord.logs.filter((l) => l.code === 'uncaught_exception' || l.code === 'unhandled_rejection')).toEqual([]);
  }, 300_000);
});
