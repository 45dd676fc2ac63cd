/**
 * `startCoordinator`: express + socket.io on one port. Sites connect outbound, handshake, and are driven through
 * rounds by the RoundRunner with a fit workflow (plain, or SecAgg+ when `secureAggregation` is set). Returns a
 * handle with the URL, progress events, the history and `close()`. This file only composes the parts.
 *
 * @example
 * const coord = await startCoordinator({ identity, enrollment, initialWeights, rounds: 3, minSites: 2, port: 0 });
 * coord.events.on('roundCompleted', (r) => console.log(r.round, r.meanTrainLoss));
 * const history = await coord.done;
 * await coord.close();
 */
import type { EventEmitter } from 'node:events';
import { publicKeyToString } from '../protocol/identity.ts';
import type { CoordinatorTransport } from '../protocol/memory-transport.ts';
import type { WeightSet } from '../protocol/named-tensor.ts';
import { socketIoServerTransport } from '../protocol/socketio-transport.ts';
import { SiteActivityTracker } from './dashboard/index.ts';
import { CoordinatorError } from './errors/index.ts';
import { resolveOptions, type CoordinatorOptions, type ResolvedOptions } from './coordinator-options.ts';
import {
  ConnectionGate,
  createHttpApp,
  DEFAULT_CONNECTION_LIMITS,
  startServer,
  StatusTracker,
  type CoordinatorServer,
  type CoordinatorStatus,
} from './http/index.ts';
import { coordinatorMetrics, type CoordinatorMetrics } from './metrics/index.ts';
import { MIN_SECURE_SITES, RoundRunner, type RoundEvents, type RoundRecord, type RunOutcome } from './rounds/index.ts';
import { SiteByteBudget, SiteGateway, SiteRegistry, type SiteEvents } from './sites/index.ts';
import { CheckpointStore, type Checkpoint } from './storage/index.ts';
import { composeRunPrivacy, type PrivacyEvent, type RunPrivacyReport } from '../protocol/privacy/index.ts';
import { hasPrivacyAccounting, type PrivacyStatus } from './strategies/index.ts';
import {
  PlainFitWorkflow,
  runStatisticsRound,
  SecureFitWorkflow,
  StatisticsRoundError,
  type StatisticsRequest,
  type StatisticsResult,
} from './workflows/index.ts';

export interface CoordinatorHandle {
  url: string;
  port: number;
  /** Base64 Ed25519 public key sites must pin. */
  publicKey: string;
  /** Progress: 'stage', 'roundStarted', 'siteFailed', 'siteReplied', 'roundCompleted', 'finished', 'siteConnected', 'siteDisconnected'. */
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
   * global model (`LocalTrainer.statistics`); only the element-wise sums come back. Waits (up to `waitForSitesMs`)
   * for max(3, minSites) sites first. Throws StatisticsRoundError.
   * @example const { sums, included } = await coord.runStatisticsRound({ name: 'class-histogram', clip: 1e4 });
   */
  runStatisticsRound(request: StatisticsRequest): Promise<StatisticsResult>;
  /** Accept a site over any Transport (the in-memory one in unit tests). */
  accept(transport: CoordinatorTransport): void;
  /** Stop rounds, disconnect sites, close the HTTP server. Idempotent. */
  close(): Promise<void>;
}

export { DEFAULT_HEARTBEAT, DEFAULT_MIN_AGGREGATED_FRACTION, DEFAULT_RECONNECT_GRACE_MS, type CoordinatorOptions, type Heartbeat } from './coordinator-options.ts';
export type { SiteEvents } from './sites/index.ts';

async function resume(store: CheckpointStore | null, r: ResolvedOptions, opts: CoordinatorOptions): Promise<{ weights: WeightSet; lastRound: number; history: RoundRecord[] }> {
  const checkpoint: Checkpoint | null = store ? await store.load() : null;
  if (!checkpoint) return { weights: r.strategy.initialize?.(opts.initialWeights) ?? opts.initialWeights, lastRound: 0, history: [] };
  if (checkpoint.strategyState) r.strategy.importState?.(checkpoint.strategyState);
  r.logger.info({ code: 'resumed', round: checkpoint.round, dir: opts.checkpointDir }, 'resuming from checkpoint');
  return { weights: checkpoint.weights, lastRound: checkpoint.round, history: checkpoint.history };
}

export async function startCoordinator(opts: CoordinatorOptions): Promise<CoordinatorHandle> {
  const r = resolveOptions(opts);
  const store = opts.checkpointDir ? new CheckpointStore(opts.checkpointDir) : null;
  const initial = await resume(store, r, opts);
  const registry = new SiteRegistry();
  const tracker = new StatusTracker(registry, () => opts.enrollment.siteIds(), r.secureAggregation ? { clip: r.secureAggregation.clip, maxExamples: r.secureAggregation.maxExamples } : null);
  const metrics = coordinatorMetrics({ bytesReceived: () => tracker.bytes().received, bytesSent: () => tracker.bytes().sent });
  let handle: CoordinatorHandle | undefined; // set below; afterRounds runs long after
  const runner = createRunner({ opts, r, store, registry, tracker, metrics, initial, handle: () => handle! });
  // The runner is the one emitter; connection events are added to it so callers listen in one place.
  const events = runner as unknown as EventEmitter<RoundEvents & SiteEvents>;
  // The dashboard's per-site view, from the same events the handle exposes.
  const activity = new SiteActivityTracker(opts.enrollment.siteIds());
  activity.attach(events);
  const { maxSiteBytesPerRound: _budget, ...connectionLimits } = opts.limits ?? {};
  const gate = new ConnectionGate({ ...DEFAULT_CONNECTION_LIMITS, ...connectionLimits }, r.logger, (reason) => metrics.limitRefusals.inc({ reason }));
  const budget = new SiteByteBudget(r.maxSiteBytesPerRound, { logger: r.logger, onRefused: () => metrics.limitRefusals.inc({ reason: 'byte_budget' }) });
  const gateway = createGateway({ opts, r, registry, tracker, metrics, events, gate, runner, budget });
  // Every round (round 0's initial evaluation included) starts each site's budget from 0; so does a statistics round.
  const newBudgetPeriod = (label: () => string): void => {
    budget.newPeriod(label);
    gateway.resetOverBudget();
  };
  runner.on('stage', (stage) => {
    if (stage === 'waiting_for_sites') newBudgetPeriod(() => `round ${runner.round}`);
  });
  // Releases of DP statistics rounds (statisticsRound), composed with the training's ledger in the status.
  const statisticsReleases: { event: PrivacyEvent; delta: number }[] = [];
  const status = (): CoordinatorStatus =>
    tracker.status({
      stage: runner.stage,
      round: runner.round,
      rounds: opts.rounds,
      minSites: r.minSites,
      strategy: r.strategy.name,
      coordinatorKey: publicKeyToString(opts.identity.publicKey),
      history: runner.history,
      outcome: runner.outcome,
      privacy: hasPrivacyAccounting(r.strategy) ? r.strategy.privacyStatus() : null,
      privacyLedger: runPrivacy(hasPrivacyAccounting(r.strategy) ? r.strategy.privacyStatus() : null, statisticsReleases),
      byteBudget: budget.snapshot(),
    });
  const server = await startServer({
    host: opts.host ?? '127.0.0.1',
    port: opts.port ?? 0,
    ...(opts.tls ? { tls: opts.tls } : {}),
    headersTimeoutMs: r.headersMs,
    connectTimeoutMs: r.handshakeMs,
    pingIntervalMs: r.heartbeat.pingIntervalMs,
    pingTimeoutMs: r.heartbeat.pingTimeoutMs,
    app: createHttpApp({ status, sites: () => activity.snapshot((id) => tracker.siteBytes(id)), history: () => runner.history, metrics, model: () => runner.currentModel(), ...(opts.restToken !== undefined ? { restToken: opts.restToken } : {}) }),
    beforeListen: (http) => gate.attach(http),
    onSocket: (socket) => gateway.accept(socketIoServerTransport(socket)),
  });
  handle = makeHandle({ opts, r, runner, registry, tracker, metrics, gateway, server, status, events, statisticsReleases, newBudgetPeriod });
  // Rounds start only once the handle exists, so hooks that receive it (afterRounds) can never see it missing.
  if (opts.autoStart !== false) void handle.start();
  return handle;
}

interface RunnerParts {
  opts: CoordinatorOptions;
  r: ResolvedOptions;
  store: CheckpointStore | null;
  registry: SiteRegistry;
  tracker: StatusTracker;
  metrics: CoordinatorMetrics;
  initial: { weights: WeightSet; lastRound: number; history: RoundRecord[] };
  /** The handle, for `afterRounds` (which runs long after it exists). */
  handle: () => CoordinatorHandle;
}

/** The round state machine with its fit workflow (plain, or SecAgg+), reporting replies and failures to the status tracker. */
function createRunner(p: RunnerParts): RoundRunner {
  const { opts, r, tracker } = p;
  const runner = new RoundRunner(
    {
      strategy: r.strategy,
      fitWorkflow: r.secureAggregation ? new SecureFitWorkflow(r.secureAggregation, opts.enrollment, opts.secAggTestHooks, tracker.secAggMonitor) : new PlainFitWorkflow(),
      registry: p.registry,
      rounds: opts.rounds,
      minSites: r.minSites,
      timeouts: r.timeouts,
      logger: r.logger,
      metrics: p.metrics,
      store: p.store,
      maxUpdateBytes: r.maxUpdateBytes,
      minAggregatedFraction: r.minAggregatedFraction,
      enrolledSiteIds: () => opts.enrollment.siteIds(),
      ...(opts.afterRounds ? { afterRounds: () => opts.afterRounds!(p.handle()) } : {}),
    },
    p.initial,
  );
  runner.on('siteReplied', (rep) => tracker.replied(rep));
  runner.on('siteFailed', (f) => tracker.failed(f));
  return runner;
}

interface GatewayParts {
  opts: CoordinatorOptions;
  r: ResolvedOptions;
  registry: SiteRegistry;
  tracker: StatusTracker;
  metrics: CoordinatorMetrics;
  events: EventEmitter<RoundEvents & SiteEvents>;
  gate: ConnectionGate;
  runner: RoundRunner;
  budget: SiteByteBudget;
}

/** Where site transports enter: handshake, registry, status and connection-limit bookkeeping. */
function createGateway(p: GatewayParts): SiteGateway {
  const { opts, r, tracker, gate, runner } = p;
  const addressOf = (peer: string): string => peer.split('#')[0];
  return new SiteGateway({
    identity: opts.identity,
    enrollment: opts.enrollment,
    registry: p.registry,
    logger: r.logger,
    metrics: p.metrics,
    events: p.events,
    handshakeMs: r.handshakeMs,
    maxUpdateBytes: r.maxUpdateBytes,
    budget: p.budget,
    partialTransferTtlMs: Math.max(120_000, r.timeouts.reconnectGraceMs),
    ...(opts.chunkBytes ? { chunkBytes: opts.chunkBytes } : {}),
    ...(opts.enrollmentPath ? { enrollmentPath: opts.enrollmentPath } : {}),
    onAuthenticated: (c) => {
      tracker.connected(c);
      gate.authenticated(addressOf(c.peer));
    },
    onReleased: (c) => {
      tracker.closed(c);
      gate.released(addressOf(c.peer));
    },
    finished: () => ({ done: runner.finished, lastRound: runner.round }),
  });
}

/**
 * The run's whole privacy ledger: training (DP-FedAvg) and statistics releases composed in RDP, at the training's
 * delta (the statistics' when training is not DP); null when nothing is DP.
 */
function runPrivacy(training: PrivacyStatus | null, statistics: readonly { event: PrivacyEvent; delta: number }[]): RunPrivacyReport | null {
  if (!training && statistics.length === 0) return null;
  const delta = training?.delta ?? statistics[0].delta;
  return composeRunPrivacy(training?.events ?? [], statistics.map((s) => s.event), delta);
}

interface HandleParts {
  statisticsReleases: { event: PrivacyEvent; delta: number }[];
  opts: CoordinatorOptions;
  r: ResolvedOptions;
  runner: RoundRunner;
  registry: SiteRegistry;
  tracker: StatusTracker;
  metrics: CoordinatorMetrics;
  gateway: SiteGateway;
  server: CoordinatorServer;
  status: () => CoordinatorStatus;
  events: EventEmitter<RoundEvents & SiteEvents>;
  /** Start a new byte-budget period (a statistics round). */
  newBudgetPeriod(label: () => string): void;
}

function makeHandle(p: HandleParts): CoordinatorHandle {
  const { opts, r, runner, registry } = p;
  let started: Promise<RoundRecord[]> | null = null;
  let settle!: { resolve(h: RoundRecord[]): void; reject(e: Error): void };
  const done = new Promise<RoundRecord[]>((resolve, reject) => (settle = { resolve, reject }));
  done.catch(() => {}); // callers that never await `done` must not see an unhandled rejection
  const statsAbort = new AbortController();
  let closed: Promise<void> | null = null;
  return {
    url: p.server.url,
    port: p.server.port,
    publicKey: publicKeyToString(opts.identity.publicKey),
    events: p.events,
    done,
    start: () => {
      if (!started) {
        started = runner.run();
        started.then(settle.resolve, (e: Error) => {
          r.logger.warn({ code: (e as CoordinatorError).code ?? 'rounds_ended', err: e.message }, 'rounds ended early');
          settle.reject(e);
        });
      }
      return done;
    },
    status: p.status,
    history: () => runner.history,
    connectedSites: () => registry.ids(),
    weights: () => runner.weights,
    metrics: p.metrics,
    outcome: () => runner.outcome,
    runStatisticsRound: (request) => statisticsRound(p, request, statsAbort.signal),
    accept: (t) => p.gateway.accept(t),
    close: () => {
      closed ??= (async () => {
        statsAbort.abort();
        runner.stop();
        if (!started) settle.reject(new CoordinatorError('stopped', 'coordinator closed before starting'));
        await p.gateway.close();
        await p.server.close();
      })();
      return closed;
    },
  };
}

/** A statistics round on the current model; after a restart the sites may still be reconnecting: wait for them first. */
async function statisticsRound(p: HandleParts, request: StatisticsRequest, signal: AbortSignal): Promise<StatisticsResult> {
  const { opts, r, registry } = p;
  const possible = opts.enrollment.siteIds().length + opts.enrollment.toJSON().tokens.length;
  if (possible < MIN_SECURE_SITES) {
    throw new StatisticsRoundError('not-enough-sites', `secure statistics need at least ${MIN_SECURE_SITES} connected sites, and only ${possible} can ever connect (enrolled sites and tokens)`);
  }
  p.newBudgetPeriod(() => `statistics round ${request.name}`);
  const want = Math.max(MIN_SECURE_SITES, r.minSites);
  await registry.waitForCount(want, r.timeouts.waitForSitesMs, signal).catch((e: Error) => {
    if (signal.aborted) throw new CoordinatorError('stopped', 'coordinator stopped');
    r.logger.warn({ code: 'statistics_quorum_timeout', want, connected: registry.size, err: e.message }, 'statistics round starts without its quorum of sites');
  });
  const result = await runStatisticsRound(
    {
      registry,
      enrollment: opts.enrollment,
      logger: r.logger,
      stageMs: r.timeouts.fitMs,
      reconnectGraceMs: r.timeouts.reconnectGraceMs,
      signal,
      model: () => p.runner.currentModel(),
      secure: r.secureAggregation,
      monitor: p.tracker.secAggMonitor,
      ...(opts.secAggTestHooks ? { hooks: opts.secAggTestHooks } : {}),
    },
    request,
  );
  if (result.privacy && request.dp) p.statisticsReleases.push({ event: result.privacy.event, delta: request.dp.delta });
  return result;
}
