/**
 * Caps on what strangers can hold open before they authenticate: a total number of TCP connections, and a number of
 * not-yet-authenticated connections per remote address (an authenticated site session does not count against its
 * address). Without them ~1000 half-open connections exhaust the usual file-descriptor limit and a dropped site can no
 * longer rejoin (issue 11). A refused connection is closed before any byte is read, counted per reason, and logged
 * with its code — at most a few lines per reason and window, then one line with the number left unlogged.
 */
import type { Server as HttpServer } from 'node:http';
import type { Socket } from 'node:net';
import type { Logger } from '../../protocol/common/index.ts';

export interface ConnectionLimits {
  /** Open TCP connections at once (sites, REST clients, strangers). */
  maxConnections: number;
  /** Open connections per remote address that have not completed the site handshake. */
  maxUnauthenticatedPerAddress: number;
}

export const DEFAULT_CONNECTION_LIMITS: ConnectionLimits = { maxConnections: 512, maxUnauthenticatedPerAddress: 32 };

export type RefusalReason = 'connection_cap' | 'address_cap';

/** Logs the first `perWindow` events of each code per window, then one summary line per window with the rest. */
export class ThrottledLog {
  private readonly windows = new Map<string, { start: number; logged: number; dropped: number }>();

  constructor(
    private readonly logger: Logger,
    private readonly perWindow = 5,
    private readonly windowMs = 10_000,
  ) {}

  warn(code: string, fields: Record<string, unknown>, msg: string): void {
    const now = Date.now();
    let w = this.windows.get(code);
    if (!w || now - w.start >= this.windowMs) {
      if (w && w.dropped > 0) this.logger.warn({ code, unlogged: w.dropped, windowMs: this.windowMs }, `${w.dropped} more "${code}" events in the last window were not logged one by one`);
      w = { start: now, logged: 0, dropped: 0 };
      this.windows.set(code, w);
    }
    if (w.logged < this.perWindow) {
      w.logged++;
      this.logger.warn({ code, ...fields }, msg);
    } else w.dropped++;
  }
}

/** Normalises `::ffff:127.0.0.1` and `127.0.0.1` to one key. */
export function addressKey(address: string | undefined): string {
  if (!address) return 'unknown';
  return address.startsWith('::ffff:') ? address.slice(7) : address;
}

export class ConnectionGate {
  private open = 0;
  private readonly openByAddress = new Map<string, number>();
  private readonly authedByAddress = new Map<string, number>();
  private readonly log: ThrottledLog;

  constructor(
    private readonly limits: ConnectionLimits,
    logger: Logger,
    private readonly onRefused: (reason: RefusalReason) => void,
  ) {
    this.log = new ThrottledLog(logger);
  }

  /** Watch every TCP connection of `server` (raw sockets: before TLS, before HTTP parsing). */
  attach(server: HttpServer): void {
    server.on('connection', (socket: Socket) => this.admit(socket));
  }

  private refuse(socket: Socket, reason: RefusalReason, address: string): void {
    this.onRefused(reason);
    this.log.warn(reason, { address, open: this.open, limits: this.limits }, reason === 'connection_cap' ? 'connection refused: too many open connections' : 'connection refused: too many unauthenticated connections from this address');
    socket.destroy();
  }

  private admit(socket: Socket): void {
    const address = addressKey(socket.remoteAddress);
    if (this.open >= this.limits.maxConnections) return this.refuse(socket, 'connection_cap', address);
    const unauthenticated = (this.openByAddress.get(address) ?? 0) - (this.authedByAddress.get(address) ?? 0);
    if (unauthenticated >= this.limits.maxUnauthenticatedPerAddress) return this.refuse(socket, 'address_cap', address);
    this.open++;
    this.openByAddress.set(address, (this.openByAddress.get(address) ?? 0) + 1);
    socket.once('close', () => {
      this.open--;
      const n = (this.openByAddress.get(address) ?? 1) - 1;
      if (n <= 0) this.openByAddress.delete(address);
      else this.openByAddress.set(address, n);
    });
  }

  /** A site session from `address` completed its handshake (its connection no longer counts as unauthenticated). */
  authenticated(address: string): void {
    const key = addressKey(address);
    this.authedByAddress.set(key, (this.authedByAddress.get(key) ?? 0) + 1);
  }

  /** That session closed. */
  released(address: string): void {
    const key = addressKey(address);
    const n = (this.authedByAddress.get(key) ?? 1) - 1;
    if (n <= 0) this.authedByAddress.delete(key);
    else this.authedByAddress.set(key, n);
  }

  get openConnections(): number {
    return this.open;
  }
}
