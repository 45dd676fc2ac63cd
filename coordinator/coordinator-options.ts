/**
 * What `startCoordinator` accepts, and the same options with every default filled in and every impossible value
 * refused (CoordinatorError 'bad_options') before anything listens or any round starts.
 */
import type { Enrollment } from '../protocol/enrollment.ts';
import type { Identity } from '../protocol/identity.ts';
import { silentLogger, type Logger } from '../protocol/common/index.ts';
import type { WeightSet } from '../protocol/named-tensor.ts';
import { encodedSize } from '../protocol/tensor-codec.ts';
import { CoordinatorError } from './errors/index.ts';
import type { ConnectionLimits } from './http/index.ts';
import { defaultSiteBytesPerRound } from './sites/index.ts';
import { checkRunPlan, DEFAULT_MIN_AGGREGATED_FRACTION, DEFAULT_RELEASE_AFTER_RESTART_MS, type RoundTimeouts } from './rounds/index.ts';
import { FedAvg, withDifferentialPrivacy, type DifferentialPrivacyConfig, type Strategy } from './strategies/index.ts';
import { aggregatedTensors, quantFor, type SecAggTestHooks, type SecureAggregationOptions } from './workflows/index.ts';
import type { CoordinatorHandle } from './start-coordinator.ts';

export interface CoordinatorOptions {
  identity: Identity;
  enrollment: Enrollment;
  /** Starting global model (ignored when a checkpoint in `checkpointDir` is resumed). */
  initialWeights: WeightSet;
  /** Total number of rounds. */
  rounds: number;
  /**
   * Sites needed to start a round (default 1). Whether the replies suffice to aggregate is the strategy's decision
   * (`minFitResults`); the default strategy is FedAvg with `minFitResults: minSites`.
   */
  minSites?: number;
  /** Default: FedAvg with all sites, 1 local epoch, lr 0.01, at least `minSites` results to aggregate. */
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
  timeouts?: Partial<RoundTimeouts & { handshakeMs: number; headersMs: number } & Heartbeat>;
  /** Caps on connections (defaults in http/connection-limits.ts) and the per-site byte budget per round. */
  limits?: Partial<ConnectionLimits & SiteByteLimits>;
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

export { DEFAULT_MIN_AGGREGATED_FRACTION };

/**
 * The engine.io heartbeat: the coordinator pings every `pingIntervalMs` and closes a connection whose pong has not
 * come `pingTimeoutMs` later (sites learn both values in the handshake and close on their side after
 * interval + timeout without a ping). A site's event loop is blocked while its engine runs a synchronous step
 * (training, evaluation, statistics), and on a loaded machine such a step takes minutes of wall time: the
 * socket.io defaults (25 s + 20 s) then drop a healthy site mid-round (RELIABILITY.md, "Sites dropped under load").
 */
export interface Heartbeat {
  pingIntervalMs: number;
  pingTimeoutMs: number;
}

/** Tolerates a site (or coordinator) event loop blocked for up to 25 s + 120 s. */
export const DEFAULT_HEARTBEAT: Heartbeat = { pingIntervalMs: 25_000, pingTimeoutMs: 120_000 };
/**
 * How long a request waits for a site that dropped mid-round to reconnect and answer on its new connection (the
 * site answers from its cache: no second training run). Bounded by the stage deadline in any case.
 */
export const DEFAULT_RECONNECT_GRACE_MS = 300_000;

export interface SiteByteLimits {
  /**
   * Bytes one site may send per round (sealed envelopes, counted before they are opened; a transfer announcement is
   * checked before its buffer exists). Default: 4 x the encoded model + 16 MiB (coordinator/sites/byte-budget.ts).
   */
  maxSiteBytesPerRound: number;
}

/** The budget, checked against the model: below one encoded model no site could ever upload its update. */
function siteBytesPerRound(opts: CoordinatorOptions): number {
  const modelBytes = encodedSize(opts.initialWeights);
  const v = opts.limits?.maxSiteBytesPerRound ?? defaultSiteBytesPerRound(modelBytes);
  if (!Number.isSafeInteger(v) || v < modelBytes) {
    throw new CoordinatorError('bad_options', `limits.maxSiteBytesPerRound must be an integer of at least the encoded model's ${modelBytes} bytes (one update), got ${v}`);
  }
  return v;
}

export interface ResolvedOptions {
  minSites: number;
  logger: Logger;
  /** The strategy, wrapped in DP-FedAvg when `differentialPrivacy` is set. */
  strategy: Strategy;
  /** The secure-aggregation options the run uses (quantization pinned under distributed DP). */
  secureAggregation: SecureAggregationOptions | undefined;
  timeouts: RoundTimeouts;
  handshakeMs: number;
  headersMs: number;
  heartbeat: Heartbeat;
  maxUpdateBytes: number;
  maxSiteBytesPerRound: number;
  minAggregatedFraction: number;
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

function heartbeatOf(t: Partial<Heartbeat>): Heartbeat {
  const h = { pingIntervalMs: t.pingIntervalMs ?? DEFAULT_HEARTBEAT.pingIntervalMs, pingTimeoutMs: t.pingTimeoutMs ?? DEFAULT_HEARTBEAT.pingTimeoutMs };
  for (const [k, v] of Object.entries(h)) {
    // setTimeout caps delays at 2^31-1 ms; a larger one would fire at once and drop every site.
    if (!Number.isInteger(v) || v < 1 || v > 2 ** 31 - 1) throw new CoordinatorError('bad_options', `timeouts.${k} must be an integer number of ms in 1..2147483647, got ${v}`);
  }
  return h;
}

export function resolveOptions(opts: CoordinatorOptions): ResolvedOptions {
  if (!Number.isInteger(opts.rounds) || opts.rounds < 0) throw new CoordinatorError('bad_options', `rounds must be a non-negative integer, got ${opts.rounds}`);
  if (opts.restToken !== undefined && (typeof opts.restToken !== 'string' || opts.restToken.length < 16)) {
    throw new CoordinatorError('bad_options', 'restToken must be a string of at least 16 characters');
  }
  const minSites = opts.minSites ?? 1;
  if (!Number.isInteger(minSites) || minSites < 1) throw new CoordinatorError('bad_options', `minSites must be >= 1, got ${minSites}`);
  const logger = opts.logger ?? silentLogger;
  const minAggregatedFraction = opts.minAggregatedFraction ?? DEFAULT_MIN_AGGREGATED_FRACTION;
  const { strategy, secure } = withPrivacy(opts.strategy ?? new FedAvg({ minFitResults: minSites }), opts, minSites);
  checkRunPlan(
    {
      rounds: opts.rounds,
      minSites,
      enrolledSites: opts.enrollment.siteIds().length,
      minAggregatedFraction,
      ...(secure ? { secureAggregation: secure } : {}),
    },
    logger,
  );
  const t = opts.timeouts ?? {};
  return {
    minSites,
    logger,
    strategy,
    secureAggregation: secure,
    timeouts: {
      waitForSitesMs: t.waitForSitesMs ?? Infinity,
      fitMs: t.fitMs ?? 30 * 60_000,
      evaluateMs: t.evaluateMs ?? 10 * 60_000,
      finishMs: t.finishMs ?? 5_000,
      reconnectGraceMs: t.reconnectGraceMs ?? DEFAULT_RECONNECT_GRACE_MS,
      releaseAfterRestartMs: t.releaseAfterRestartMs ?? DEFAULT_RELEASE_AFTER_RESTART_MS,
    },
    handshakeMs: t.handshakeMs ?? 10_000,
    headersMs: t.headersMs ?? 10_000,
    heartbeat: heartbeatOf(t),
    maxUpdateBytes: opts.maxUpdateBytes ?? 256 * 1024 * 1024,
    maxSiteBytesPerRound: siteBytesPerRound(opts),
    minAggregatedFraction,
  };
}
