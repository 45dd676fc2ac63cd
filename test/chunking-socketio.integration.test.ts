/**
 * A 5 MB WeightSet crosses a real socket.io connection whose maxHttpBufferSize stays at the default 1 MB:
 * encoded, chunked, sealed, acknowledged, reassembled and decoded bit-exactly. The same payload sent as one
 * emit is refused by socket.io (the limit is real), so the chunking is what makes it work.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { Server } from 'socket.io';
import { io as ioClient, type Socket as ClientSocket } from 'socket.io-client';
import nacl from 'tweetnacl';
import type { ClientToServerEvents, ServerToClientEvents } from '../protocol/events.ts';
import { socketIoClientTransport, socketIoServerTransport } from '../protocol/socketio-transport.ts';
import { SecureChannel, sealedPort } from '../protocol/secure-channel.ts';
import { SecureSession } from '../protocol/secure-session.ts';
import { decodeWeightSet, encodeWeightSet } from '../protocol/tensor-codec.ts';
import type { WeightSet } from '../protocol/named-tensor.ts';
import type { CoordinatorTransport } from '../protocol/memory-transport.ts';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

async function server(): Promise<{ url: string; nextConnection: () => Promise<CoordinatorTransport> }> {
  const http = createServer();
  const io = new Server<ClientToServerEvents, ServerToClientEvents>(http, { serveClient: false }); // default maxHttpBufferSize: 1e6
  const pending: Array<(t: CoordinatorTransport) => void> = [];
  io.on('connection', (s) => pending.shift()?.(socketIoServerTransport(s)));
  await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
  cleanups.push(() => new Promise<void>((r) => io.close(() => r())));
  return {
    url: `http://127.0.0.1:${(http.address() as AddressInfo).port}`,
    nextConnection: () => new Promise((resolve) => pending.push(resolve)),
  };
}

/** Bitwise equality (vitest's deep equality is far too slow for millions of elements). */
function sameBits(a: Float32Array, b: Float32Array): boolean {
  return Buffer.compare(Buffer.from(a.buffer, a.byteOffset, a.byteLength), Buffer.from(b.buffer, b.byteOffset, b.byteLength)) === 0;
}

function client(url: string): ClientSocket<ServerToClientEvents, ClientToServerEvents> {
  const s = ioClient(url, { transports: ['websocket'], reconnection: false, forceNew: true }) as ClientSocket<ServerToClientEvents, ClientToServerEvents>;
  cleanups.push(() => void s.close());
  return s;
}

describe('chunked transfer over socket.io with the default 1 MB limit', () => {
  it('moves a 5 MB WeightSet intact in both directions', async () => {
    const srv = await server();
    const accepted = srv.nextConnection();
    const sock = client(srv.url);
    await new Promise<void>((r) => sock.once('connect', () => r()));
    const key = nacl.randomBytes(32);
    const coord = new SecureChannel(sealedPort(await accepted), new SecureSession(key, 'coordinator'));
    const site = new SecureChannel(sealedPort(socketIoClientTransport(sock, srv.url)), new SecureSession(key, 'site'));

    const ws: WeightSet = [
      { name: 'big.w', shape: [1024, 1280], data: Float32Array.from({ length: 1024 * 1280 }, (_, i) => Math.sin(i)) },
      { name: 'small.b', shape: [7], data: new Float32Array([1, 2, 3, 4, 5, 6, 7]) },
    ];
    const bytes = encodeWeightSet(ws);
    expect(bytes.length).toBeGreaterThan(5 * 1024 * 1024);

    const down = site.receiveBlob('model-5mb');
    const sent = await coord.sendBlob('model-5mb', bytes);
    expect(sent.chunksSent).toBe(Math.ceil(bytes.length / (256 * 1024)));
    const back = decodeWeightSet(await down);
    expect(sameBits(back[0].data, ws[0].data)).toBe(true);
    expect(sameBits(back[1].data, ws[1].data)).toBe(true);

    const up = coord.receiveBlob('update-5mb');
    await site.sendBlob('update-5mb', encodeWeightSet(back));
    expect(sameBits(decodeWeightSet(await up)[0].data, ws[0].data)).toBe(true);
    expect(coord.stats.rejected).toEqual({});
    // Every envelope stayed under socket.io's limit.
    expect(coord.stats.bytesSent / coord.stats.envelopesSent).toBeLessThan(1e6);
  });

  it('the same payload in a single emit is refused by socket.io (the 1 MB limit is in force)', async () => {
    const srv = await server();
    const accepted = srv.nextConnection();
    const sock = client(srv.url);
    await new Promise<void>((r) => sock.once('connect', () => r()));
    const transport = await accepted;
    const closed = new Promise<string>((r) => transport.onClose((reason) => r(reason)));
    sock.emit('sealed', new Uint8Array(2_000_000));
    expect(['remote', 'transport_error']).toContain(await closed);
  });
});
