/**
 * connectSocketIo always settles: a server that goes away (or stalls) after the websocket opened and before
 * socket.io's namespace handshake answered is a failed attempt with a typed code, never a promise left pending
 * (issue 11: a site process waiting on one exited 0 in the middle of a run). Real socket.io server on port 0.
 */
import { createServer, type Server as HttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Server, type Socket } from 'socket.io';
import { afterEach, describe, expect, it } from 'vitest';
import { ConnectError, connectSocketIo } from './connect.ts';

let http: HttpServer | null = null;
let io: Server | null = null;
afterEach(async () => {
  // io.close() ends every engine.io connection and closes the HTTP server it is attached to.
  await new Promise<void>((r) => (io ? io.close(() => r()) : r()));
  http = io = null;
});

/** A socket.io server whose namespace handshake never answers; `onPending` sees each attempt in that window. */
async function stalledServer(onPending: (s: Socket) => void): Promise<string> {
  http = createServer();
  io = new Server(http, { transports: ['websocket'] });
  io.use((socket) => onPending(socket)); // next() is never called
  await new Promise<void>((r) => http!.listen(0, '127.0.0.1', r));
  return `http://127.0.0.1:${(http.address() as AddressInfo).port}`;
}

describe('connectSocketIo', () => {
  it('rejects with connection_closed when the server closes between the websocket and the socket.io handshake', async () => {
    const url = await stalledServer((s) => s.conn.close());
    const err = await connectSocketIo(url, 5000).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConnectError);
    expect((err as ConnectError).code).toBe('connection_closed');
  }, 20_000); // bounded: before the fix the attempt never settled

  it('rejects with connect_timeout when the socket.io handshake never answers', async () => {
    const url = await stalledServer(() => {});
    const started = performance.now();
    const err = await connectSocketIo(url, 300).catch((e: unknown) => e);
    expect((err as ConnectError).code).toBe('connect_timeout');
    expect(performance.now() - started).toBeLessThan(5000);
  }, 20_000);
});
