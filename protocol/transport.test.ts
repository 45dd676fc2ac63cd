/** One contract, run over both Transport implementations (in-memory and socket.io on 127.0.0.1:0). */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { Server } from 'socket.io';
import { io as ioClient, type Socket as ClientSocket } from 'socket.io-client';
import type { ClientToServerEvents, ServerToClientEvents } from './events.ts';
import { createMemoryTransportPair, type CoordinatorTransport, type SiteTransport } from './memory-transport.ts';
import { socketIoClientTransport, socketIoServerTransport } from './socketio-transport.ts';
import type { CloseReason } from './transport.ts';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

type Pair = { site: SiteTransport; coordinator: CoordinatorTransport };

async function socketIoPair(): Promise<Pair> {
  const http = createServer();
  const io = new Server<ClientToServerEvents, ServerToClientEvents>(http, { serveClient: false });
  const accepted = new Promise<CoordinatorTransport>((r) => io.once('connection', (s) => r(socketIoServerTransport(s))));
  await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
  cleanups.push(() => new Promise<void>((r) => io.close(() => r())));
  const url = `http://127.0.0.1:${(http.address() as AddressInfo).port}`;
  const sock = ioClient(url, { transports: ['websocket'], reconnection: false, forceNew: true }) as ClientSocket<ServerToClientEvents, ClientToServerEvents>;
  cleanups.push(() => void sock.close());
  await new Promise<void>((r) => sock.once('connect', () => r()));
  return { site: socketIoClientTransport(sock, url), coordinator: await accepted };
}

const next = <T>(register: (l: (...a: unknown[]) => void) => unknown): Promise<T> => new Promise((r) => register((...a) => r(a[0] as T)));

describe.each([
  ['memory', async (): Promise<Pair> => createMemoryTransportPair('contract')],
  ['socket.io', socketIoPair],
])('Transport contract: %s', (_name, makePair) => {
  it('delivers handshake objects and binary envelopes both ways, in order', async () => {
    const { site, coordinator } = await makePair();
    const hello = next<unknown>((l) => coordinator.once('hello', l));
    site.send('hello', { v: 1, type: 'hello', siteId: 's', identityKey: 'a', ephemeralKey: 'b', nonce: 'c' });
    expect(await hello).toMatchObject({ type: 'hello', siteId: 's' });

    const got: number[] = [];
    const three = new Promise<void>((r) => coordinator.on('sealed', (e) => got.push((e as Uint8Array)[0]) === 3 && r()));
    for (const b of [1, 2, 3]) site.send('sealed', new Uint8Array([b, 0, 0]));
    await three;
    expect(got).toEqual([1, 2, 3]);

    const back = next<Uint8Array>((l) => site.once('sealed', l));
    coordinator.send('sealed', new Uint8Array([9, 8, 7]));
    expect(Array.from(await back)).toEqual([9, 8, 7]);
  });

  it('removes listeners with the returned function', async () => {
    const { site, coordinator } = await makePair();
    let count = 0;
    const off = coordinator.on('sealed', () => count++);
    off();
    const seen = next<unknown>((l) => coordinator.once('sealed', l));
    site.send('sealed', new Uint8Array([1]));
    await seen;
    expect(count).toBe(0);
  });

  it('reports close on both ends (local / peer_left) and drops sends after close', async () => {
    const { site, coordinator } = await makePair();
    const local = new Promise<CloseReason>((r) => site.onClose(r));
    const remote = new Promise<CloseReason>((r) => coordinator.onClose(r));
    site.disconnect();
    expect(await local).toBe('local');
    expect(await remote).toBe('peer_left');
    expect(site.connected).toBe(false);
    expect(coordinator.connected).toBe(false);
    expect(() => site.send('sealed', new Uint8Array([1]))).not.toThrow();
    site.disconnect(); // idempotent
  });
});
