/**
 * `runSite`: connect outbound to the coordinator, handshake, serve rounds, reconnect with backoff on disconnect,
 * and return when the coordinator says training is finished.
 *
 * @example
 * const result = await runSite({ url, identity, coordinatorPublicKey, siteId: 'hospital-a', trainer });
 * console.log(`trained ${result.rounds.length} rounds`);
 */
import { DEFAULT_MAX_ENVELOPE_BYTES, type Identity, parsePublicKey, SITE_ID_RE, type SiteTransport, TransferStore } from '../../protocol/index.ts';
import { silentLogger, type Logger } from '../../protocol/common/index.ts';
import { abortableDelay, backoffDelay, type BackoffOptions } from './backoff.ts';
import type { LocalTrainer } from './local-trainer.ts';
import { connectSocketIo, ConnectError, type ConnectFailureCode } from './connect.ts';
import { composeFit, type FitMod } from './fit-path.ts';
import { PeerKeys } from './peer-keys.ts';
import { SiteSecAggState } from './secagg-mod.ts';
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
   * Where the peer keys learned on first use are kept across restarts (trust on first use survives a restart only
   * with it). Ignored for peers pinned with `peerIdentities`, which win.
   */
  knownPeersFile?: string;
  /** Wrappers around the fit path (update transforms, e.g. differential privacy's clipping and noise), outermost first. */
  fitMods?: readonly FitMod[];
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
 * Consecutive failed connection attempts after which a site gives up (`reconnect.maxAttempts`). Bounded, so a site
 * whose coordinator is gone for good stops with a clear last message; large enough to ride out a supervisor
 * restarting the coordinator again and again: with the default schedule (0.5 s doubling to a 30 s cap, equal jitter)
 * the 29 sleeps add up to 6.3-12.5 min, more than Kubernetes' 5-minute CrashLoopBackOff cap. Only attempts that end
 * without a completed handshake count (refused, reset, timed out, or closed before socket.io's handshake answered);
 * every session, however short, resets the count and the give-up clock, so quick restarts in a row cost nothing.
 */
export const DEFAULT_MAX_ATTEMPTS = 30;
/** Time without a coordinator session after which a site gives up (`giveUpAfterMs`): 30 minutes. */
export const DEFAULT_GIVE_UP_AFTER_MS = 30 * 60_000;

/** Configuration errors are fatal and reported before any connection attempt (retrying cannot fix them). */
function checkOptions(opts: RunSiteOptions): { coordinatorKey: Uint8Array; pinned: Map<string, Uint8Array> | undefined } {
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
  if (!opts.peerIdentities) return { coordinatorKey, pinned: undefined };
  const pinned = new Map<string, Uint8Array>();
  for (const [id, k] of Object.entries(opts.peerIdentities)) {
    try {
      const key = typeof k === 'string' ? parsePublicKey(k) : k;
      if (key.length !== 32) throw new Error('length');
      pinned.set(id, key);
    } catch {
      throw new SiteError('bad_options', `peerIdentities["${id}"] is not a 32-byte Ed25519 public key`);
    }
  }
  return { coordinatorKey, pinned };
}

async function sessionContext(opts: RunSiteOptions, logger: Logger, result: SiteRunResult): Promise<SessionContext> {
  const { coordinatorKey, pinned } = checkOptions(opts);
  const peers = new PeerKeys(pinned, opts.knownPeersFile);
  try {
    await peers.load();
  } catch (e) {
    throw new SiteError('bad_options', (e as Error).message);
  }
  return {
    siteId: opts.siteId,
    identity: opts.identity,
    coordinatorKey,
    trainer: opts.trainer,
    fit: composeFit(opts.trainer, opts.fitMods),
    logger,
    // Outlives every connection so an interrupted model download resumes at its first missing chunk.
    transfers: new TransferStore({ maxChunkBytes: DEFAULT_MAX_ENVELOPE_BYTES }),
    ...(opts.enrollmentToken ? { enrollmentToken: opts.enrollmentToken } : {}),
    handshakeTimeoutMs: opts.handshakeTimeoutMs ?? 10_000,
    ...(opts.chunkBytes ? { chunkBytes: opts.chunkBytes } : {}),
    model: null,
    lastFit: null,
    secagg: new SiteSecAggState(peers),
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
}

export async function runSite(opts: RunSiteOptions): Promise<SiteRunResult> {
  const log = (opts.logger ?? silentLogger).child({ component: 'site', siteId: opts.siteId });
  const result: SiteRunResult = { lastRound: 0, rounds: [], connections: 0, bytesSent: 0, bytesReceived: 0 };
  const ctx = await sessionContext(opts, log, result);
  const connect = opts.connect ?? (() => connectSocketIo(opts.url, ctx.handshakeTimeoutMs, opts.tlsCa));
  const maxAttempts = opts.reconnect?.maxAttempts ?? DEFAULT_MAX_ATTEMPTS;
  const giveUpAfterMs = opts.giveUpAfterMs ?? DEFAULT_GIVE_UP_AFTER_MS;
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
    await backOff(failures, opts, last, log);
  }
}

async function backOff(failures: number, opts: RunSiteOptions, last: { code: string; reason: string } | null, log: Logger): Promise<void> {
  const delay = backoffDelay(failures, opts.reconnect);
  log.warn(
    { code: last?.code ?? 'connect_failed', attempt: failures, maxAttempts: opts.reconnect?.maxAttempts ?? DEFAULT_MAX_ATTEMPTS, delayMs: Math.round(delay), err: last?.reason },
    `${last?.code === 'tls_untrusted_certificate' ? "cannot verify the coordinator's TLS certificate" : 'no session with the coordinator'}; retrying in ${(delay / 1000).toFixed(1)} s`,
  );
  await abortableDelay(delay, opts.signal).catch(() => {
    throw new SiteError('aborted', 'aborted by caller');
  });
}
