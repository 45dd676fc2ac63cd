/**
 * The coordinator's one port: an HTTP(S) server whose request paths have exactly one owner each — engine.io answers
 * everything under `/socket.io/` (websocket transport only: the long-polling transport is refused with 400, sites
 * never use it) and express everything else. (Express attached as an independent 'request' listener next to
 * engine.io once made both answer `/socket.io/?transport=polling`: ERR_HTTP_HEADERS_SENT, uncaught, process gone.)
 * Connection limits (http/connection-limits.ts) run before either sees a byte.
 */
import { createServer, type Server as HttpServer, type RequestListener } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { Server as IoServer, type Socket as IoSocket } from 'socket.io';
import type { ClientToServerEvents, ServerToClientEvents } from '../../protocol/index.ts';
import { CoordinatorError } from '../errors/index.ts';

export interface ServerOptions {
  host: string;
  port: number;
  tls?: { cert: string | Buffer; key: string | Buffer };
  /** Complete request headers must arrive within this (slow or half-open HTTP connections are closed). */
  headersTimeoutMs: number;
  /** socket.io's namespace connect must follow the websocket upgrade within this. */
  connectTimeoutMs: number;
  /** engine.io heartbeat (coordinator-options.ts `Heartbeat`): ping every interval, close after interval + timeout without a pong. */
  pingIntervalMs: number;
  pingTimeoutMs: number;
  app: RequestListener;
  /** Called with the server before it listens (connection limits attach here). */
  beforeListen?(http: HttpServer): void;
  onSocket(socket: IoSocket<ClientToServerEvents, ServerToClientEvents>): void;
}

export interface CoordinatorServer {
  http: HttpServer;
  io: IoServer<ClientToServerEvents, ServerToClientEvents>;
  url: string;
  port: number;
  close(): Promise<void>;
}

/** How long close() lets open connections end on their own before destroying them. */
const CLOSE_GRACE_MS = 2000;

export async function startServer(o: ServerOptions): Promise<CoordinatorServer> {
  const timing = {
    headersTimeout: o.headersTimeoutMs,
    requestTimeout: Math.max(o.headersTimeoutMs, 60_000),
    // How often Node checks the two timeouts above (default 30 s would let half-open connections pile up).
    connectionsCheckingInterval: Math.min(1000, o.headersTimeoutMs),
  };
  let http: HttpServer;
  try {
    http = o.tls ? createHttpsServer({ cert: o.tls.cert, key: o.tls.key, minVersion: 'TLSv1.2', ...timing }) : createServer(timing);
  } catch (e) {
    throw new CoordinatorError('bad_options', `tls: cannot use the certificate/key: ${(e as Error).message}`);
  }
  http.on('request', o.app); // before socket.io: engine.io's attach() wraps the existing listeners
  const io = new IoServer<ClientToServerEvents, ServerToClientEvents>(http, {
    // socket.io's default 1 MB limit is kept on purpose: models travel in acknowledged chunks (protocol/secure-channel.ts).
    maxHttpBufferSize: 1e6,
    serveClient: false,
    transports: ['websocket'],
    connectTimeout: o.connectTimeoutMs,
    pingInterval: o.pingIntervalMs,
    pingTimeout: o.pingTimeoutMs,
  });
  io.on('connection', o.onSocket);
  // Every TCP connection, so that close() can end the ones nothing else will. Found by scripts/reliability-fuzz.ts:
  // connections a stranger left half-open (its side ended, ours not: e.g. an upgrade request on a path engine.io does
  // not own, after something was written) hold no event-loop reference but keep http.close() waiting forever, so the
  // coordinator process ended with exit 13 (an unsettled top-level await) instead of 0.
  const sockets = new Set<Socket>();
  let closing = false;
  http.on('connection', (socket: Socket) => {
    if (closing) return void socket.destroy(); // socket.io stops listening only after closing its namespaces
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  o.beforeListen?.(http);
  await new Promise<void>((resolve, reject) => {
    http.once('error', reject);
    http.listen(o.port, o.host, () => {
      http.off('error', reject);
      resolve();
    });
  });
  const port = (http.address() as AddressInfo).port;
  const url = `${o.tls ? 'https' : 'http'}://${o.host.includes(':') ? `[${o.host}]` : o.host}:${port}`;
  return {
    http,
    io,
    url,
    port,
    close: () =>
      new Promise<void>((resolve) => {
        closing = true;
        // Sites are let go gracefully (engine.io closes their websockets); what is left after the grace is destroyed.
        const stragglers = setTimeout(() => {
          for (const s of sockets) s.destroy();
        }, CLOSE_GRACE_MS);
        io.close(() => {
          clearTimeout(stragglers);
          resolve();
        });
        http.closeAllConnections?.();
      }),
  };
}
