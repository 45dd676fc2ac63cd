/**
 * `startCoordinator`: express + socket.io on one port. Sites connect outbound, handshake, and are driven through
 * rounds by the RoundRunner. Returns a handle with the URL, progress events, the history and `close()`.
 *
 * @example
 * const coord = await startCoordinator({ identity, enrollment, initialWeights, rounds: 3, minSites: 2, port: 0 });
 * coord.events.on('roundCompleted', (r) => console.log(r.round, r.meanTrainLoss));
 * const history = await coord.done;
 * await coord.close();
 */
import type { EventEmitter } from 'node:events';
import { createServer, type Server as HttpServer } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { Server as IoServer } from 'socket.io';
import type { Enrollment } from '../protocol/enrollment.ts';
import type { ClientToServerEvents, ServerToClientEvents } from '../protocol/events.ts';
import { publicKeyToString, type Identity } from '../protocol/identity.ts';
import { silentLogger, type Logger } from '../protocol/common/index.ts';
import type { CoordinatorTransport } from '../protocol/memory-transport.ts';
import type { WeightSet } from '../protocol/named-tensor.ts';
import { socketIoServerTransport } from '../protocol/socketio-transport.ts';
import { DEFAULT_MAX_ENVELOPE_BYTES } from '../protocol/secure-session.ts';
import { TransferStore } from '../protocol/transfer-store.ts';
import { CheckpointStore } from './checkpoint-store.ts';
import { SiteActivityTracker } from './dashboard/index.ts';
import { createHttpApp, type CoordinatorStatus } from './http-app.ts';
import { coordinatorMetrics, type CoordinatorMetrics } from './metrics-registry.ts';
import type { RoundRecord } from './round-history.ts';
import { CoordinatorError, RoundRunner, type RoundEvents, type RoundTimeouts } from './round-runner.ts';
import { SiteConnection } from './site-connection.ts';
import { SiteRegistry } from './site-registry.ts';
import type { SecAggTestHooks } from './secagg-driver.ts';
import { aggregatedTensors, quantFor, type SecureAggregationOptions } from './secure-fit.ts';
import { checkRunPlan, MIN_SECURE_SITES, type RunOutcome } from './run-checks.ts';
import { runStatisticsRound, StatisticsRoundError, type StatisticsRequest, type StatisticsResult } from './statistics-round.ts';
import { FedAvg } from './strategies/fedavg.ts';
import type { Strategy } from './strategies/strategy.ts';
import { withDifferentialPrivacy, type DifferentialPrivacyConfig } from './strategies/dp-config.ts';
import { hasPrivacyAccounting } from './strategies/dp-fedavg.ts';

export interface CoordinatorOptions {
  identity: Identity;
  enrollment: Enrollment;
  /** Starting global model (ignored when a checkpoint in `checkpointDir` is resumed). */
  initialWeights: WeightSet;
  /** Total number of rounds. */
  rounds: number;
  /** Sites needed to start a round and successful fits needed to aggregate (default 1). */
  minSites?: number;
  /** Default: FedAvg with all sites, 1 local epoch, lr 0.01. */
  strategy?: Strategy;
  /** Default 127.0.0.1. */
  host?: string;
  /** Default 0 (an ephemeral port; read it back from the handle). */
  port?: number;
  /**
   * Serve HTTPS/WSS with this certificate chain and private key (PEM). Sites then connect with `https://` and trust
   * the certificate through their CA bundle or `--ca`. The signed handshake and sealed envelopes run inside TLS
   * unchanged: TLS adds confidentiality of metadata (who talks when, message sizes on the REST side) and protects
   * the REST surface; it is not what authenticates the coordinator to sites (the pinned identity key is).
   */
  tls?: { cert: string | Buffer; key: string | Buffer };
  /**
   * When set, the REST routes other than `/health` (and the dashboard page's data) require
   * `Authorization: Bearer <token>`: status, round history and metrics name the sites and their validation scores.
   */
  restToken?: string;
  timeouts?: Partial<RoundTimeouts & { handshakeMs: number }>;
  /** If set, the enrollment is written back here whenever a one-time token enrolls a site (so it survives restarts). */
  enrollmentPath?: string;
  /** Where checkpoints go; a checkpoint found there is resumed. */
  checkpointDir?: string;
  logger?: Logger;
  /**
   * Called after the last round, before the sites are told to finish: the place for statistics rounds on the
   * final model (e.g. the pooled source statistics for source-free adaptation). Failures are logged.
   */
  afterRounds?: (handle: CoordinatorHandle) => Promise<void>;
  /** Start rounds as soon as `minSites` are connected (default true); otherwise call `handle.start()`. */
  autoStart?: boolean;
  /** Transfer chunk size in bytes (default 256 KiB). */
  chunkBytes?: number;
  /** Largest encoded update accepted from one site (default 256 MiB). */
  maxUpdateBytes?: number;
  /**
   * Secure aggregation (SecAgg+): when set, every round's fit stage runs the five secagg stages and the coordinator
   * learns only the sum of the sites' weighted updates. Validated before the first round (a quantization that could
   * wrap around for the enrolled number of sites is refused). See SECURITY.md.
   */
  secureAggregation?: SecureAggregationOptions;
  /**
   * Client-level differential privacy (DP-FedAvg, coordinator/strategies/dp-fedavg.ts): the strategy is wrapped so
   * that each site's update is clipped and the mean is noised; a run whose planned rounds would exceed
   * `maxEpsilon` refuses to start (PrivacyError 'budget-exceeded'). See SECURITY.md.
   */
  differentialPrivacy?: DifferentialPrivacyConfig;
  /**
   * Fraction of the rounds that must aggregate for the run to count as done (default 0.5; at least one round always).
   * A run below it still writes its history, but `handle.outcome()` says why it failed and the CLI exits non-zero.
   */
  minAggregatedFraction?: number;
  /** Test seams only (a dishonest-coordinator double, a recorder of what the coordinator receives). */
  secAggTestHooks?: SecAggTestHooks;
}

export interface CoordinatorHandle {
  url: string;
  port: number;
  /** Base64 Ed25519 public key sites must pin. */
  publicKey: string;
  /** Progress: 'stage', 'roundStarted', 'siteFailed', 'roundCompleted', 'finished', 'siteConnected', 'siteDisconnected'. */
  events: EventEmitter<RoundEvents & SiteEvents>;
  /** Resolves with the history after the last round; rejects with CoordinatorError('stopped'|'not_enough_sites'). */
  done: Promise<RoundRecord[]>;
  /** Start the rounds when `autoStart: false` (idempotent; returns `done`). */
  start(): Promise<RoundRecord[]>;
  status(): CoordinatorStatus;
  history(): RoundRecord[];
  connectedSites(): string[];
  /** The current global weights (a reference; clone before mutating). */
  weights(): WeightSet;
  metrics: CoordinatorMetrics;
  /** Whether the run did its job (set when the last round is over, before `afterRounds`; null before). */
  outcome(): RunOutcome | null;
  /**
   * Federated statistics through secure aggregation: every connected site computes `request.name` on the current
   * global model (`LocalTrainer.statistics`); only the element-wise sums come back. Throws StatisticsRoundError.
   * @example const { sums, included } = await coord.runStatisticsRound({ name: 'class-histogram', clip: 1e4 });
   */
  runStatisticsRound(request: StatisticsRequest): Promise<StatisticsResult>;
  /** Accept a site over any Transport (the in-memory one in unit tests). */
  accept(transport: CoordinatorTransport): void;
  /** Stop rounds, disconnect sites, close the HTTP server. Idempotent. */
  close(): Promise<void>;
}

/** Default `minAggregatedFraction`: a run in which most rounds kept the old model did not train. */
export const DEFAULT_MIN_AGGREGATED_FRACTION = 0.5;

export interface SiteEvents {
  siteConnected: [siteId: string];
  siteDisconnected: [siteId: string];
}

/**
 * The strategy wrapped in DP-FedAvg when `differentialPrivacy` is set (throws PrivacyError before any round): central
 * noise at the coordinator, or, with secure aggregation, discrete Gaussian shares added by the sites (then the
 * quantization is pinned, because the sites' noise is calibrated to its step).
 */
function withPrivacy(inner: Strategy, opts: CoordinatorOptions, minSites: number): { strategy: Strategy; secure: SecureAggregationOptions | undefined } {
  const enrolledSites = Math.max(minSites, opts.enrollment.siteIds().length);
  if (!opts.differentialPrivacy) return { strategy: inner, secure: opts.secureAggregation };
  if (!opts.secureAggregation) return { strategy: withDifferentialPrivacy(inner, opts.differentialPrivacy, { rounds: opts.rounds, enrolledSites }), secure: undefined };
  const secure = { ...opts.secureAggregation, scaleBits: quantFor(opts.secureAggregation, Math.max(3, enrolledSites)).scaleBits };
  const dim = aggregatedTensors(inner, opts.initialWeights).reduce((s, t) => s + t.length, 0);
  const strategy = withDifferentialPrivacy(inner, opts.differentialPrivacy, {
    rounds: opts.rounds,
    enrolledSites,
    distributed: { quant: { clip: secure.clip, scaleBits: secure.scaleBits }, maxExamples: secure.maxExamples, dim },
  });
  return { strategy, secure };
}

export async function startCoordinator(opts: CoordinatorOptions): Promise<CoordinatorHandle> {
  if (!Number.isInteger(opts.rounds) || opts.rounds < 0) throw new CoordinatorError('bad_options', `rounds must be a non-negative integer, got ${opts.rounds}`);
  if (opts.restToken !== undefined && (typeof opts.restToken !== 'string' || opts.restToken.length < 16)) {
    throw new CoordinatorError('bad_options', 'restToken must be a string of at least 16 characters');
  }
  const minSites = opts.minSites ?? 1;
  if (!Number.isInteger(minSites) || minSites < 1) throw new CoordinatorError('bad_options', `minSites must be >= 1, got ${minSites}`);
  const logger = opts.logger ?? silentLogger;
  const { strategy, secure: secureAggregation } = withPrivacy(opts.strategy ?? new FedAvg(), opts, minSites);
  const metrics = coordinatorMetrics();
  const registry = new SiteRegistry();
  const store = opts.checkpointDir ? new CheckpointStore(opts.checkpointDir) : null;
  const timeouts: RoundTimeouts = {
    waitForSitesMs: opts.timeouts?.waitForSitesMs ?? Infinity,
    fitMs: opts.timeouts?.fitMs ?? 30 * 60_000,
    evaluateMs: opts.timeouts?.evaluateMs ?? 10 * 60_000,
    finishMs: opts.timeouts?.finishMs ?? 5_000,
    reconnectGraceMs: opts.timeouts?.reconnectGraceMs ?? 0,
  };
  const handshakeMs = opts.timeouts?.handshakeMs ?? 10_000;
  const maxUpdateBytes = opts.maxUpdateBytes ?? 256 * 1024 * 1024;
  const minAggregatedFraction = opts.minAggregatedFraction ?? DEFAULT_MIN_AGGREGATED_FRACTION;
  checkRunPlan(
    {
      rounds: opts.rounds,
      minSites,
      enrolledSites: opts.enrollment.siteIds().length,
      minAggregatedFraction,
      ...(secureAggregation ? { secureAggregation } : {}),
    },
    logger,
  );

  const checkpoint = store ? await store.load() : null;
  if (checkpoint) {
    if (checkpoint.strategyState) strategy.importState?.(checkpoint.strategyState);
    logger.info({ round: checkpoint.round, dir: opts.checkpointDir }, 'resuming from checkpoint');
  }
  // Set once the handle exists; the afterRounds hook only runs after the last round, long after that.
  let handleRef: CoordinatorHandle | undefined;
  const runner = new RoundRunner(
    {
      strategy,
      registry,
      rounds: opts.rounds,
      minSites,
      timeouts,
      logger,
      metrics,
      store,
      maxUpdateBytes,
      minAggregatedFraction,
      ...(opts.afterRounds
        ? {
            afterRounds: () => {
              if (!handleRef) throw new CoordinatorError('bad_transition', 'afterRounds ran before the coordinator handle existed');
              return opts.afterRounds!(handleRef);
            },
          }
        : {}),
      ...(secureAggregation
        ? { secure: { options: secureAggregation, enrollment: opts.enrollment, ...(opts.secAggTestHooks ? { hooks: opts.secAggTestHooks } : {}) } }
        : {}),
    },
    checkpoint ? { weights: checkpoint.weights, lastRound: checkpoint.round, history: checkpoint.history } : { weights: opts.initialWeights, lastRound: 0, history: [] },
  );
  // The runner is the one emitter; connection events are added to it so callers listen in one place.
  const siteEvents = runner as unknown as EventEmitter<SiteEvents & RoundEvents>;
  const connections = new Set<SiteConnection>();
  // Byte counters = sessions already closed + sessions still open, computed at scrape time.
  const closedBytes = { in: 0, out: 0 };
  const closedBySite = new Map<string, { in: number; out: number }>();
  // The dashboard's per-site view, from the same events the handle exposes.
  const activity = new SiteActivityTracker(opts.enrollment.siteIds());
  activity.attach(siteEvents);
  metrics.registry.beforeRender = () => {
    let bytesIn = closedBytes.in;
    let bytesOut = closedBytes.out;
    for (const c of registry.all()) {
      bytesIn += c.stats?.bytesReceived ?? 0;
      bytesOut += c.stats?.bytesSent ?? 0;
    }
    metrics.bytesIn.setTotal({}, bytesIn);
    metrics.bytesOut.setTotal({}, bytesOut);
  };
  // Saves are chained (never two writers on the temp file) and awaited by close().
  let enrollmentSaves: Promise<void> = Promise.resolve();
  if (opts.enrollmentPath) {
    const path = opts.enrollmentPath;
    opts.enrollment.onEnrolled = (siteId) => {
      logger.info({ siteId }, 'site enrolled with a one-time token');
      enrollmentSaves = enrollmentSaves.then(() =>
        opts.enrollment.save(path).catch((e: Error) => logger.error({ err: e.message, path }, 'could not persist enrollment')),
      );
    };
  }
  // Receive stores per site id outlive connections, so an update upload cut by a disconnect resumes by chunk index.
  const uploadStores = new Map<string, TransferStore>();
  const transfersFor = (siteId: string): TransferStore => {
    let st = uploadStores.get(siteId);
    if (!st) uploadStores.set(siteId, (st = new TransferStore({ maxChunkBytes: DEFAULT_MAX_ENVELOPE_BYTES, maxTransferBytes: maxUpdateBytes, maxPartials: 2, maxCompleted: 2 })));
    return st;
  };
  let closing = false;

  const accept = (transport: CoordinatorTransport): void => {
    if (closing) {
      transport.disconnect();
      return;
    }
    const conn = new SiteConnection(transport, {
      identity: opts.identity,
      enrollment: opts.enrollment,
      logger,
      handshakeTimeoutMs: handshakeMs,
      ...(opts.chunkBytes ? { chunkBytes: opts.chunkBytes } : {}),
      transfersFor,
      onHandshake: (outcome) => metrics.handshakes.inc({ outcome }),
      onReject: (err) => metrics.rejected.inc({ code: err.code }),
      onReady: (c) => {
        registry.add(c);
        metrics.connectedSites.set({}, registry.size);
        logger.info({ siteId: c.siteId, peer: c.peer }, 'site connected');
        siteEvents.emit('siteConnected', c.siteId as string);
        if (runner.finished) c.finish('all rounds completed', runner.round);
      },
      onClosed: (c) => {
        registry.remove(c);
        connections.delete(c);
        const s = c.stats;
        if (s) {
          closedBytes.in += s.bytesReceived;
          closedBytes.out += s.bytesSent;
          if (c.siteId) {
            const b = closedBySite.get(c.siteId) ?? { in: 0, out: 0 };
            closedBySite.set(c.siteId, { in: b.in + s.bytesReceived, out: b.out + s.bytesSent });
          }
        }
        metrics.connectedSites.set({}, registry.size);
        logger.info({ siteId: c.siteId }, 'site disconnected');
        siteEvents.emit('siteDisconnected', c.siteId as string);
      },
    });
    connections.add(conn);
    transport.onClose(() => connections.delete(conn));
  };

  let http: HttpServer;
  try {
    http = opts.tls ? createHttpsServer({ cert: opts.tls.cert, key: opts.tls.key, minVersion: 'TLSv1.2' }) : createServer();
  } catch (e) {
    throw new CoordinatorError('bad_options', `tls: cannot use the certificate/key: ${(e as Error).message}`);
  }
  // One owner per request path: engine.io answers everything under /socket.io/ (and refuses the polling transport:
  // sites use websocket only), express everything else. Express is attached first so engine.io's attach() wraps it;
  // attaching both as independent listeners made both answer /socket.io/?transport=polling (ERR_HTTP_HEADERS_SENT,
  // an uncaught exception that killed the process).
  // One status for the REST surface and the handle.
  const status = (): CoordinatorStatus => ({
    stage: runner.stage,
    round: runner.round,
    rounds: opts.rounds,
    minSites,
    connectedSites: registry.ids(),
    strategy: strategy.name,
    coordinatorKey: publicKeyToString(opts.identity.publicKey),
    privacy: hasPrivacyAccounting(strategy) ? strategy.privacyStatus() : null,
  });
  const siteBytes = (siteId: string): { toSite: number; fromSite: number } => {
    const closed = closedBySite.get(siteId) ?? { in: 0, out: 0 };
    const open = registry.all().filter((c) => c.siteId === siteId);
    return {
      toSite: closed.out + open.reduce((a, c) => a + (c.stats?.bytesSent ?? 0), 0),
      fromSite: closed.in + open.reduce((a, c) => a + (c.stats?.bytesReceived ?? 0), 0),
    };
  };
  const app = createHttpApp({
    status,
    sites: () => activity.snapshot(siteBytes),
    history: () => runner.history,
    metrics,
    model: () => runner.currentModel(),
    ...(opts.restToken !== undefined ? { restToken: opts.restToken } : {}),
  });
  http.on('request', app);
  const io = new IoServer<ClientToServerEvents, ServerToClientEvents>(http, {
    // socket.io's default 1 MB limit is kept on purpose: models travel in acknowledged chunks (protocol/secure-channel.ts).
    maxHttpBufferSize: 1e6,
    serveClient: false,
    transports: ['websocket'],
  });
  io.on('connection', (socket) => accept(socketIoServerTransport(socket)));
  await new Promise<void>((resolve, reject) => {
    http.once('error', reject);
    http.listen(opts.port ?? 0, opts.host ?? '127.0.0.1', () => {
      http.off('error', reject);
      resolve();
    });
  });
  const addr = http.address() as AddressInfo;
  const host = opts.host ?? '127.0.0.1';
  const url = `${opts.tls ? 'https' : 'http'}://${host.includes(':') ? `[${host}]` : host}:${addr.port}`;

  let donePromise: Promise<RoundRecord[]> | null = null;
  const start = (): Promise<RoundRecord[]> => {
    if (!donePromise) {
      donePromise = runner.run();
      donePromise.catch((e) => logger.warn({ err: (e as Error).message }, 'rounds ended early'));
    }
    return donePromise;
  };
  let resolveDone!: (h: RoundRecord[]) => void;
  let rejectDone!: (e: Error) => void;
  const done = new Promise<RoundRecord[]>((res, rej) => {
    resolveDone = res;
    rejectDone = rej;
  });
  done.catch(() => {}); // callers that never await `done` must not see an unhandled rejection
  const kick = (): void => void start().then(resolveDone, rejectDone);

  const statsAbort = new AbortController();
  let closed: Promise<void> | null = null;
  handleRef = {
    url,
    port: addr.port,
    publicKey: publicKeyToString(opts.identity.publicKey),
    events: siteEvents,
    done,
    start: () => {
      kick();
      return done;
    },
    status,
    history: () => runner.history,
    connectedSites: () => registry.ids(),
    weights: () => runner.weights,
    metrics,
    outcome: () => runner.outcome,
    runStatisticsRound: async (request) => {
      // After a restart (or any gap) the sites may still be reconnecting: wait for the run's quorum, as a round
      // does, before summing statistics over whoever is there (at least 3).
      const possible = opts.enrollment.siteIds().length + opts.enrollment.toJSON().tokens.length;
      if (possible < MIN_SECURE_SITES) {
        throw new StatisticsRoundError('not-enough-sites', `secure statistics need at least ${MIN_SECURE_SITES} connected sites, and only ${possible} can ever connect (enrolled sites and tokens)`);
      }
      const want = Math.max(MIN_SECURE_SITES, minSites);
      await registry.waitForCount(want, timeouts.waitForSitesMs, statsAbort.signal).catch((e: Error) => {
        if (statsAbort.signal.aborted) throw new CoordinatorError('stopped', 'coordinator stopped');
        logger.warn({ code: 'statistics_quorum_timeout', want, connected: registry.size, err: e.message }, 'statistics round starts without its quorum of sites');
      });
      return runStatisticsRound(
        {
          registry,
          enrollment: opts.enrollment,
          logger,
          stageMs: timeouts.fitMs,
          signal: statsAbort.signal,
          model: () => runner.currentModel(),
          secure: opts.secureAggregation,
          ...(opts.secAggTestHooks ? { hooks: opts.secAggTestHooks } : {}),
        },
        request,
      );
    },
    accept,
    close: () => {
      if (!closed) {
        closing = true;
        statsAbort.abort();
        runner.stop();
        if (!donePromise) rejectDone(new CoordinatorError('stopped', 'coordinator closed before starting'));
        for (const c of [...connections]) c.close();
        closed = new Promise<void>((resolve) => {
          io.close(() => resolve());
          http.closeAllConnections?.();
        }).then(() => enrollmentSaves);
      }
      return closed;
    },
  };
  // Rounds start only once the handle exists, so hooks that receive it (afterRounds) can never see it missing,
  // even when a resumed checkpoint leaves no round to run.
  if (opts.autoStart !== false) kick();
  return handleRef;
}
