import { createServer, type Server } from 'node:http';
import { connect, type Socket } from 'node:net';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { silentLogger, type Logger } from '../../protocol/common/index.ts';
import { ConnectionGate, ThrottledLog, type RefusalReason } from './connection-limits.ts';

let server: Server | undefined;
const sockets: Socket[] = [];
afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
  server = undefined;
});

/** Opens a connection and resolves once it is closed by the server or has stayed open for a moment. */
function open(port: number): Promise<'closed' | 'open'> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    sockets.push(s);
    s.on('error', () => {});
    s.on('close', () => resolve('closed'));
    // The server writes nothing: an HTTP request with incomplete headers keeps it waiting.
    s.on('connect', () => {
      s.write('GET / HTTP/1.1\r\n');
      // Accepted connections stay open; the gate destroys refused ones at once, before any byte is read.
      setImmediate(() => setImmediate(() => setTimeout(() => resolve(s.destroyed ? 'closed' : 'open'), 200)));
    });
  });
}

describe('ConnectionGate', () => {
  it('caps unauthenticated connections per address, frees a slot when a site authenticates, and caps the total', async () => {
    const refused: RefusalReason[] = [];
    const gate = new ConnectionGate({ maxConnections: 5, maxUnauthenticatedPerAddress: 2 }, silentLogger, (r) => refused.push(r));
    server = createServer();
    gate.attach(server);
    await new Promise<void>((r) => server!.listen(0, '127.0.0.1', () => r()));
    const port = (server.address() as { port: number }).port;
    expect(await open(port)).toBe('open');
    expect(await open(port)).toBe('open');
    expect(await open(port)).toBe('closed');
    expect(refused).toEqual(['address_cap']);
    gate.authenticated('::ffff:127.0.0.1'); // one of the two open connections completed a site handshake
    expect(await open(port)).toBe('open');
    gate.authenticated('127.0.0.1');
    expect(await open(port)).toBe('open');
    gate.authenticated('127.0.0.1');
    expect(await open(port)).toBe('open'); // 5 open: the total cap
    gate.authenticated('127.0.0.1');
    expect(await open(port)).toBe('closed');
    expect(refused).toEqual(['address_cap', 'connection_cap']);
    expect(gate.openConnections).toBe(5);
  });
});

describe('ThrottledLog', () => {
  it('logs the first events of a window one by one, then says how many it did not', () => {
    const lines: { obj: Record<string, unknown>; msg?: string }[] = [];
    const logger: Logger = { debug() {}, info() {}, error() {}, warn: (obj, msg) => void lines.push({ obj: obj as Record<string, unknown>, ...(msg ? { msg } : {}) }), child: () => logger };
    const log = new ThrottledLog(logger, 2, 60_000);
    for (let i = 0; i < 5; i++) log.warn('address_cap', { i }, 'refused');
    expect(lines.map((l) => l.obj.i)).toEqual([0, 1]);
    vi.useFakeTimers();
    try {
      const windowed = new ThrottledLog(logger, 1, 1000);
      lines.length = 0;
      for (const m of ['a', 'b', 'c']) windowed.warn('x', {}, m);
      vi.advanceTimersByTime(1000);
      windowed.warn('x', {}, 'd');
      expect(lines.map((l) => [l.msg, l.obj.unlogged])).toEqual([['a', undefined], ['2 more "x" events in the last window were not logged one by one', 2], ['d', undefined]]);
    } finally {
      vi.useRealTimers();
    }
  });
});
