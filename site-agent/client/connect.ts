/**
 * Opening a connection to the coordinator (socket.io over websocket, TLS verified for https://), and naming why an
 * attempt failed with a closed set of codes an operator can grep and alert on.
 */
import { rootCertificates } from 'node:tls';
import { io } from 'socket.io-client';
import { socketIoClientTransport, type ClientToServerEvents, type ServerToClientEvents, type SiteTransport } from '../../protocol/index.ts';

/** Why a connection attempt failed, as a closed set of codes an operator can grep and alert on. */
export type ConnectFailureCode =
  | 'tls_untrusted_certificate'
  | 'tls_failed'
  | 'connection_refused'
  | 'host_not_found'
  | 'connect_timeout'
  /** The server closed the connection after the websocket opened, before socket.io's handshake answered. */
  | 'connection_closed'
  | 'handshake_failed'
  | 'connect_failed';

const TLS_TRUST_CODES = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'CERT_UNTRUSTED',
  'CERT_REVOKED',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);

/** A failed connection attempt with its typed code and the underlying cause (for the retry log line). */
export class ConnectError extends Error {
  override readonly name = 'ConnectError';
  constructor(
    readonly code: ConnectFailureCode,
    reason: string,
  ) {
    super(reason);
  }
}

/** The typed code of a failure cause (`causeCode`: Node's `err.code`, e.g. ECONNREFUSED, DEPTH_ZERO_SELF_SIGNED_CERT). */
export function classifyConnectFailure(causeCode: string | undefined, message: string): ConnectFailureCode {
  if (causeCode && TLS_TRUST_CODES.has(causeCode)) return 'tls_untrusted_certificate';
  if (causeCode === 'ECONNREFUSED') return 'connection_refused';
  if (causeCode === 'ENOTFOUND' || causeCode === 'EAI_AGAIN') return 'host_not_found';
  if (causeCode?.startsWith('ERR_SSL') || causeCode?.startsWith('ERR_TLS') || /certificate|ssl|tls/i.test(message)) return /certificate/i.test(message) ? 'tls_untrusted_certificate' : 'tls_failed';
  if (causeCode === 'ETIMEDOUT' || /timeout/i.test(message)) return 'connect_timeout';
  return 'connect_failed';
}

/**
 * engine.io reports a failed websocket as "websocket error" and keeps the cause (a TLS verification failure,
 * ECONNREFUSED, ...) in `description`: name it, so a site operator sees "self-signed certificate", not a riddle.
 */
function connectErrorOf(err: Error): ConnectError {
  const d = (err as Error & { description?: unknown }).description as { message?: unknown; error?: { message?: unknown; code?: unknown } } | undefined;
  const cause = typeof d?.error?.message === 'string' ? d.error.message : typeof d?.message === 'string' ? d.message : undefined;
  const causeCode = typeof d?.error?.code === 'string' ? d.error.code : undefined;
  const message = cause && cause !== err.message ? `${err.message}: ${cause}` : err.message;
  return new ConnectError(classifyConnectFailure(causeCode, message), message);
}

/**
 * Open a socket.io connection (websocket only, no built-in reconnection: runSite owns the policy). For `https://`
 * URLs the server certificate is verified against the system CAs plus `tlsCa`. Rejects with a ConnectError; always
 * settles, within `timeoutMs` at the latest.
 *
 * The attempt has two steps: the websocket opens (engine.io's handshake), then socket.io's namespace handshake
 * answers. A server that goes away between the two (a coordinator killed, or restarted by its supervisor, at that
 * moment) is reported by socket.io-client as `disconnect` only, with no `connect_error`, and its connect timer is
 * cleared with the connection: listening for `connect`/`connect_error` alone left the attempt pending forever, and a
 * site process with nothing else to wait on then exited with code 0 in the middle of the run (issue 11, the
 * kill-point runs that ended without a run folder). Both that close and our own timer settle the attempt.
 */
export function connectSocketIo(url: string, timeoutMs = 10_000, tlsCa?: string | Buffer): Promise<SiteTransport> {
  return new Promise((resolve, reject) => {
    const tls = tlsCa !== undefined ? { ca: [...rootCertificates, typeof tlsCa === 'string' ? tlsCa : tlsCa.toString('utf8')], rejectUnauthorized: true } : {};
    const socket = io(url, { transports: ['websocket'], reconnection: false, forceNew: true, timeout: timeoutMs, ...tls }) as import('socket.io-client').Socket<
      ServerToClientEvents,
      ClientToServerEvents
    >;
    const settle = (err: ConnectError | null): void => {
      clearTimeout(timer);
      socket.off('connect', onConnect);
      socket.off('connect_error', onError);
      socket.off('disconnect', onClosed);
      if (err === null) return resolve(socketIoClientTransport(socket, url));
      socket.close();
      reject(err);
    };
    const onConnect = (): void => settle(null);
    const onError = (err: Error): void => settle(connectErrorOf(err));
    const onClosed = (reason: string): void => settle(new ConnectError('connection_closed', `the connection closed before the socket.io handshake completed (${reason})`));
    // Referenced (keeps the process alive while the attempt is open) and independent of socket.io-client's timer.
    const timer = setTimeout(() => settle(new ConnectError('connect_timeout', `no socket.io connection within ${timeoutMs} ms`)), timeoutMs);
    socket.once('connect', onConnect);
    socket.once('connect_error', onError);
    socket.once('disconnect', onClosed);
  });
}
