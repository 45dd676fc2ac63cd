/**
 * `runSite`: connect outbound to the coordinator, handshake, serve rounds, reconnect with backoff on disconnect,
 * and return when the coordinator says training is finished.
 *
 * @example
 * const result = await runSite({ url, identity, coordinatorPublicKey, siteId: 'hospital-a', trainer });
 * console.log(`trained ${result.rounds.length} rounds`);
 */
import { rootCertificates } from 'node:tls';
import { io } from 'socket.io-client';
import type { ClientToServerEvents, ServerToClientEvents } from '../../protocol/events.ts';
import { SITE_ID_RE } from '../../protocol/enrollment.ts';
import { parsePublicKey, type Identity } from '../../protocol/identity.ts';
import { silentLogger, type Logger } from '../../protocol/common/index.ts';
import type { SiteTransport } from '../../protocol/memory-transport.ts';
import { DEFAULT_MAX_ENVELOPE_BYTES } from '../../protocol/secure-session.ts';
import { socketIoClientTransport } from '../../protocol/socketio-transport.ts';
import { TransferStore } from '../../protocol/transfer-store.ts';
import { abortableDelay, backoffDelay, type BackoffOptions } from './backoff.ts';
import type { LocalTrainer } from './local-trainer.ts';
import { SiteSecAggState } from './secure-middleware.ts';
import { runSession, SiteError, type SessionContext, type SiteProgress } from './site-session.ts';

export interface RunSiteOptions {
  /** Coordinator URL, e.g. `http://127.0.0.1:8080`. */
  url: string;
  identity: Identity;
  /** The coordinator's Ed25519 public key (bytes or base64): pinned, a different key is refused. */
  coordinatorPublicKey: Uint8Array | string;
  siteId: string;
  trainer: LocalTrainer;
  signal?: AbortSignal;
  /** One-time enrollment token, for a site not yet on the coordinator's allow-list. */
  enrollmentToken?: string;
  logger?: Logger;
  /** Backoff between attempts; `maxAttempts` consecutive failures end the run (default DEFAULT_MAX_ATTEMPTS). */
  reconnect?: BackoffOptions;
  /** Give up after this long without a session with the coordinator (default DEFAULT_GIVE_UP_AFTER_MS). */
  giveUpAfterMs?: number;
  handshakeTimeoutMs?: number;
  /** Transfer chunk size for uploads (default 256 KiB). */
  chunkBytes?: number;
  /** Progress callback (connected, fit, evaluate, failed, disconnected, finished). */
  onProgress?: (p: SiteProgress) => void;
  /**
   * Enrolled identity keys of the peer sites (bytes or base64), obtained out of band. When given, secure aggregation
   * only runs with these peers and refuses any other key the coordinator presents; when absent, the site pins each
   * peer's key the first time the coordinator presents it and refuses a later change (trust on first use).
   */
  peerIdentities?: Record<string, Uint8Array | string>;
  /**
   * Extra trusted CA certificates (PEM) for an `https://` coordinator, e.g. a consortium's private CA or a
   * self-signed coordinator certificate; the system CAs are trusted anyway. Certificates are always verified.
   */
  tlsCa?: string | Buffer;
  /** Custom transport factory (in-memory tests); default: socket.io-client to `url`. */
  connect?: () => Promise<SiteTransport>;
}

export interface SiteRunResult {
  lastRound: number;
  /** Rounds this site trained in (successful uploads), in order. */
  rounds: number[];
  connections: number;
  bytesSent: number;
  bytesReceived: number;
}

/** Why a connection attempt failed, as a closed set of codes an operator can grep and alert on. */
export type ConnectFailureCode =
  | 'tls_untrusted_certificate'
  | 'tls_failed'
  | 'connection_refused'
  | 'host_not_found'
  | 'connect_timeout'
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
 * URLs the server certificate is verified against the system CAs plus `tlsCa`. Rejects with a ConnectError.
 */
export function connectSocketIo(url: string, timeoutMs = 10_000, tlsCa?: string | Buffer): Promise<SiteTransport> {
  return new Promise((resolve, reject) => {
    const tls = tlsCa !== undefined ? { ca: [...rootCertificates, typeof tlsCa === 'string' ? tlsCa : tlsCa.toString('utf8')], rejectUnauthorized: true } : {};
    const socket = io(url, { transports: ['websocket'], reconnection: false, forceNew: true, timeout: timeoutMs, ...tls }) as import('socket.io-client').Socket<
      ServerToClientEvents,
      ClientToServerEvents
    >;
    const onConnect = (): void => {
      socket.off('connect_error', onError);
      resolve(socketIoClientTransport(socket, url));
    };
    const onError = (err: Error): void => {
      socket.off('connect', onConnect);
      socket.close();
      reject(connectErrorOf(err));
    };
    socket.once('connect', onConnect);
    socket.once('connect_error', onError);
  });
}

/** Consecutive failed connection attempts after which a site gives up (`reconnect.maxAttempts`). */
export const DEFAULT_MAX_ATTEMPTS = 30;
/** Time without a coordinator session after which a site gives up (`giveUpAfterMs`): 30 minutes. */
export const DEFAULT_GIVE_UP_AFTER_MS = 30 * 60_000;

export async function runSite(opts: RunSiteOptions): Promise<SiteRunResult> {
  // Configuration errors are fatal and reported before any connection attempt (retrying cannot fix them).
  if (!SITE_ID_RE.test(opts.siteId)) throw new SiteError('bad_options', `invalid site id ${JSON.stringify(opts.siteId)}`);
  let coordinatorKey: Uint8Array;
  try {
    coordinatorKey = typeof opts.coordinatorPublicKey === 'string' ? parsePublicKey(opts.coordinatorPublicKey) : opts.coordinatorPublicKey;
  } catch {
    throw new SiteError('bad_options', 'coordinatorPublicKey is not a base64 Ed25519 public key');
  }
  if (coordinatorKey.length !== 32) throw new SiteError('bad_options', 'coordinatorPublicKey must be 32 bytes');
  if (opts.identity?.publicKey?.length !== 32 || opts.identity?.secretKey?.length !== 64) {
    throw new SiteError('bad_options', 'identity must hold a 32-byte Ed25519 public key and a 64-byte secret key (loadIdentity)');
  }
  if (opts.enrollmentToken !== undefined && opts.enrollmentToken.length < 16) throw new SiteError('bad_options', 'enrollment tokens are at least 16 characters');
  let pinned: Map<string, Uint8Array> | undefined;
  if (opts.peerIdentities) {
    pinned = new Map();
    for (const [id, k] of Object.entries(opts.peerIdentities)) {
      try {
        const key = typeof k === 'string' ? parsePublicKey(k) : k;
        if (key.length !== 32) throw new Error('length');
        pinned.set(id, key);
      } catch {
        throw new SiteError('bad_options', `peerIdentities["${id}"] is not a 32-byte Ed25519 public key`);
      }
    }
  }
  const logger = opts.logger ?? silentLogger;
  const result: SiteRunResult = { lastRound: 0, rounds: [], connections: 0, bytesSent: 0, bytesReceived: 0 };
  const ctx: SessionContext = {
    siteId: opts.siteId,
    identity: opts.identity,
    coordinatorKey,
    trainer: opts.trainer,
    logger,
    // Outlives every connection so an interrupted model download resumes at its first missing chunk.
    transfers: new TransferStore({ maxChunkBytes: DEFAULT_MAX_ENVELOPE_BYTES }),
    ...(opts.enrollmentToken ? { enrollmentToken: opts.enrollmentToken } : {}),
    handshakeTimeoutMs: opts.handshakeTimeoutMs ?? 10_000,
    ...(opts.chunkBytes ? { chunkBytes: opts.chunkBytes } : {}),
    model: null,
    lastFit: null,
    secagg: new SiteSecAggState(pinned),
    onProgress: (p) => {
      if (p.type === 'connected') p = { ...p, attempt: result.connections };
      if (p.type === 'fit') result.rounds.push(p.round);
      if (p.type === 'disconnected') {
        result.bytesSent += p.bytesSent;
        result.bytesReceived += p.bytesReceived;
      }
      opts.onProgress?.(p);
    },
  };
  const connect = opts.connect ?? (() => connectSocketIo(opts.url, ctx.handshakeTimeoutMs, opts.tlsCa));
  const maxAttempts = opts.reconnect?.maxAttempts ?? DEFAULT_MAX_ATTEMPTS;
  const giveUpAfterMs = opts.giveUpAfterMs ?? DEFAULT_GIVE_UP_AFTER_MS;
  const log = logger.child({ component: 'site', siteId: opts.siteId });
  let failures = 0;
  let lastSessionAt = Date.now();
  let last: { code: ConnectFailureCode | 'coordinator_disconnected'; reason: string } | null = null;
  for (;;) {
    if (opts.signal?.aborted) throw new SiteError('aborted', 'aborted by caller');
    let outcome;
    try {
      const transport = await connect();
      result.connections++;
      outcome = await runSession(transport, ctx, opts.signal);
    } catch (e) {
      if (e instanceof SiteError && e.code !== 'handshake_failed') {
        // Refused, wrong coordinator, aborted: retrying will not help.
        if (e.code !== 'aborted') log.error({ code: e.code, ...(e.replyCode ? { replyCode: e.replyCode } : {}), err: e.message }, 'the coordinator cannot be used; stopping');
        throw e;
      }
      const code: ConnectFailureCode = e instanceof ConnectError ? e.code : e instanceof SiteError ? 'handshake_failed' : 'connect_failed';
      last = { code, reason: (e as Error).message };
      outcome = { kind: 'disconnected' as const, handshaken: false };
    }
    if (outcome.kind === 'finished') {
      result.lastRound = outcome.lastRound;
      log.info({ code: 'run_finished', lastRound: outcome.lastRound }, 'the coordinator says the run is finished');
      return result;
    }
    if (outcome.handshaken) {
      failures = 0;
      lastSessionAt = Date.now();
      last = { code: 'coordinator_disconnected', reason: 'the session with the coordinator closed' };
    } else failures++;
    const waited = Date.now() - lastSessionAt;
    if (failures >= maxAttempts || waited >= giveUpAfterMs) {
      const why = failures >= maxAttempts ? `${failures} consecutive failed attempts (--max-attempts ${maxAttempts})` : `${Math.round(waited / 1000)} s without the coordinator (give-up time ${Math.round(giveUpAfterMs / 1000)} s)`;
      const reason = `gave up after ${why} to reach ${opts.url}${last ? `; last error [${last.code}]: ${last.reason}` : ''}`;
      log.error({ code: 'gave_up', attempts: failures, waitedMs: waited, ...(last ? { lastCode: last.code } : {}) }, reason);
      throw new SiteError('gave_up', reason);
    }
    const delay = backoffDelay(failures, opts.reconnect);
    log.warn(
      { code: last?.code ?? 'connect_failed', attempt: failures, maxAttempts, delayMs: Math.round(delay), err: last?.reason },
      `${last?.code === 'tls_untrusted_certificate' ? 'cannot verify the coordinator\'s TLS certificate' : 'no session with the coordinator'}; retrying in ${(delay / 1000).toFixed(1)} s`,
    );
    await abortableDelay(delay, opts.signal).catch(() => {
      throw new SiteError('aborted', 'aborted by caller');
    });
  }
}
