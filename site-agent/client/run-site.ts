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
  reconnect?: BackoffOptions;
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

/**
 * engine.io reports a failed websocket as "websocket error" and keeps the cause (a TLS verification failure,
 * ECONNREFUSED, ...) in `description`: name it, so a site operator sees "self-signed certificate", not a riddle.
 */
function connectErrorMessage(err: Error): string {
  const d = (err as Error & { description?: unknown }).description as { message?: unknown; error?: { message?: unknown } } | undefined;
  const cause = typeof d?.error?.message === 'string' ? d.error.message : typeof d?.message === 'string' ? d.message : undefined;
  return cause && cause !== err.message ? `${err.message}: ${cause}` : err.message;
}

/**
 * Open a socket.io connection (websocket only, no built-in reconnection: runSite owns the policy). For `https://`
 * URLs the server certificate is verified against the system CAs plus `tlsCa`.
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
      reject(new Error(connectErrorMessage(err)));
    };
    socket.once('connect', onConnect);
    socket.once('connect_error', onError);
  });
}

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
  const maxAttempts = opts.reconnect?.maxAttempts ?? Infinity;
  let failures = 0;
  let lastError = '';
  for (;;) {
    if (opts.signal?.aborted) throw new SiteError('aborted', 'aborted by caller');
    let outcome;
    try {
      const transport = await connect();
      result.connections++;
      outcome = await runSession(transport, ctx, opts.signal);
    } catch (e) {
      if (e instanceof SiteError && e.code !== 'handshake_failed') throw e; // refused, wrong coordinator, aborted: retrying will not help
      lastError = (e as Error).message;
      logger.warn({ siteId: opts.siteId, err: lastError }, 'connection attempt failed');
      outcome = { kind: 'disconnected' as const, handshaken: false };
    }
    if (outcome.kind === 'finished') {
      result.lastRound = outcome.lastRound;
      return result;
    }
    failures = outcome.handshaken ? 0 : failures + 1;
    if (failures >= maxAttempts) {
      throw new SiteError('gave_up', `no session after ${failures} attempts${lastError ? ` (last error: ${lastError})` : ''}`);
    }
    const delay = backoffDelay(failures, opts.reconnect);
    logger.info({ siteId: opts.siteId, delayMs: Math.round(delay) }, 'reconnecting');
    await abortableDelay(delay, opts.signal).catch(() => {
      throw new SiteError('aborted', 'aborted by caller');
    });
  }
}
