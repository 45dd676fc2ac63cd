/**
 * Federated statistics through the same masked-sum path as model updates: every connected site computes a named
 * set of vectors on the current global model (`LocalTrainer.statistics`), reports only their layout (names and
 * lengths), and the vectors themselves are summed by SecAgg+. The coordinator learns the sum and who is in it —
 * e.g. example counts, BN statistics, or per-class latent sufficient statistics (count, sum, sum of outer products)
 * for the pooled source GMM.
 */
import type { Enrollment } from '../../protocol/index.ts';
import {
  addCentralStatisticsNoise,
  checkNoiseHeadroom,
  isNoisedStatistic,
  isPrivacyError,
  planStatisticsNoise,
  statisticsEvent,
  statisticsUnitBound,
  type NoiseSource,
  type PrivacyEvent,
  type StatisticsNoisePlan,
} from '../../protocol/privacy/index.ts';
import {
  exponentsFromRangeSums,
  maxSafeScaleBits,
  packLayout,
  RANGE_BUCKETS,
  scaleByExponents,
  unpackVectors,
  type PackLayout,
  type QuantConfig,
} from '../../protocol/secagg/index.ts';
import { deadlineIn, requestKey, requestSite } from '../sites/index.ts';
import type { EncodedModel, ExchangeContext } from './fit-workflow.ts';
import {
  driveSecAgg,
  newSessionId,
  prepareSecAgg,
  type DriveFailure,
  type PreparedSecAgg,
  type SecAggMonitor,
  type SecAggTestHooks,
} from './secagg-session.ts';
import { quantFor, type SecureAggregationOptions } from './secure-fit.ts';

export interface StatisticsRequest {
  /** What to compute, e.g. `source-gmm`, `bn-stats`, `class-histogram` (the trainer decides what names mean). */
  name: string;
  config?: Record<string, number | string | boolean>;
  /** Clipping range of the values (default: the coordinator's secureAggregation.clip). Sites refuse values outside it. */
  clip?: number;
  /**
   * Size each named vector's range from the data instead of a fixed clip: two masked sums (the exponent bounds, then
   * the values times 2^-bound), each at clip 1 (protocol/secagg/statistic-range.ts). For statistics without a known
   * bound, e.g. sums of squares of a model's activations. `clip` is ignored.
   */
  scaled?: boolean;
  scaleBits?: number;
  threshold?: number;
  /**
   * Differential privacy of this release (protocol/privacy/dp-statistics.ts). The sites build clipped, scaled per-unit
   * contributions (their DP request is in `config`, statisticsDpToConfig) whose every value lies in [-1, 1]; the round
   * runs at clip 1 and is never `scaled` (data-sized ranges would leak). Distributed: each site adds a discrete
   * Gaussian share before masking; central: the coordinator adds Gaussian noise to the unmasked sum.
   */
  dp?: StatisticsDpRelease;
}

export interface StatisticsDpRelease {
  readonly mode: 'central' | 'distributed';
  readonly noiseMultiplier: number;
  /** The public bound U on units per site: one unit moves the scaled sum by at most 1/U. */
  readonly maxUnits: number;
  readonly delta: number;
  /** Ledger label, e.g. `stats/source-stats`. */
  readonly label: string;
  readonly minSurvivors?: number;
  /** Central mode's noise source (crypto in real runs). */
  readonly noise: NoiseSource;
}

/** What a DP release spent and how it was noised. */
export interface StatisticsPrivacy {
  readonly event: PrivacyEvent;
  readonly plan: StatisticsNoisePlan;
  /** The sites' scale s = 1 / (U Delta), by which the released sums are divided back. */
  readonly scale: number;
  /** Quantization step 2^-scaleBits of the secure sum (distributed noise shares are in its integer units). */
  readonly scaleBits: number;
}

export interface StatisticsResult {
  /** Element-wise sums over `included` sites, by name. */
  sums: Record<string, Float32Array>;
  included: string[];
  /** Set for a DP release (request.dp). */
  privacy?: StatisticsPrivacy;
}

export type StatisticsErrorCode = 'bad-request' | 'not-enough-sites' | 'layout-mismatch' | 'aborted';

export class StatisticsRoundError extends Error {
  override readonly name = 'StatisticsRoundError';
  constructor(
    readonly code: StatisticsErrorCode,
    reason: string,
    /** Per-site reasons for not being in the sum. */
    readonly failures: readonly { siteId: string; reason: string }[] = [],
  ) {
    super(`${code}: ${reason}`);
  }
}

export interface StatisticsDeps extends Omit<ExchangeContext, 'round' | 'onReply'> {
  enrollment: Enrollment;
  /** The current round number and encoded global model (statistics are computed on it). */
  model(): { round: number } & EncodedModel;
  secure: SecureAggregationOptions | undefined;
  hooks?: SecAggTestHooks;
  monitor?: SecAggMonitor;
}

function layoutKey(entries: readonly { name: string; length: number }[]): string {
  return JSON.stringify([...entries].sort((a, b) => (a.name < b.name ? -1 : 1)).map((e) => [e.name, e.length]));
}

function checkRequest(request: StatisticsRequest, deps: StatisticsDeps): { clip: number } {
  if (typeof request?.name !== 'string' || !/^[A-Za-z0-9._:/-]{1,128}$/.test(request.name)) {
    throw new StatisticsRoundError('bad-request', 'statistics name must be 1-128 characters of [A-Za-z0-9._:/-]');
  }
  if (request.dp && request.scaled) throw new StatisticsRoundError('bad-request', 'a differentially private statistic cannot be scaled (its ranges would be sized from the data)');
  const clip = request.scaled || request.dp ? 1 : (request.clip ?? deps.secure?.clip);
  if (clip === undefined) throw new StatisticsRoundError('bad-request', 'no clip range: pass request.clip or configure secureAggregation');
  return { clip };
}

/**
 * Step 1: every site computes the statistics and answers with their layout (names and lengths, not secret). The
 * largest group of identical layouts goes on; the others are failures.
 */
async function agreeOnLayout(deps: StatisticsDeps, request: StatisticsRequest, sessionId: string, model: { round: number } & EncodedModel, failures: { siteId: string; reason: string }[]) {
  const siteIds = deps.registry.ids();
  const deadline = deadlineIn(deps.stageMs);
  const layouts = await Promise.allSettled(
    siteIds.map((siteId) =>
      requestSite(
        deps.registry,
        {
          siteId,
          label: 'statistics layout',
          deadline,
          signal: deps.signal,
          // A re-issued request is answered from the site's cache (site-agent/client/statistics-handler.ts).
          reconnectGraceMs: deps.reconnectGraceMs,
          call: (conn) => conn.statistics(sessionId, model.round, request.name, request.config ?? {}, model),
          cancel: (conn, err) => conn.cancel(requestKey.statistics(sessionId), err),
        },
        deps.logger,
      ),
    ),
  );
  const groups = new Map<string, { entries: { name: string; length: number }[]; sites: string[] }>();
  layouts.forEach((r, i) => {
    if (r.status === 'rejected') return void failures.push({ siteId: siteIds[i], reason: (r.reason as Error)?.message ?? String(r.reason) });
    const k = layoutKey(r.value);
    const g = groups.get(k) ?? { entries: r.value, sites: [] };
    g.sites.push(siteIds[i]);
    groups.set(k, g);
  });
  const best = [...groups.values()].sort((a, b) => b.sites.length - a.sites.length)[0];
  if (!best) throw new StatisticsRoundError('aborted', 'no site returned a statistics layout', failures);
  for (const g of groups.values()) {
    if (g !== best) for (const s of g.sites) failures.push({ siteId: s, reason: 'its statistics layout differs from the other sites' });
  }
  if (best.sites.length < 3) {
    throw new StatisticsRoundError(groups.size > 1 ? 'layout-mismatch' : 'not-enough-sites', `only ${best.sites.length} site(s) agree on a statistics layout`, failures);
  }
  try {
    const lengths: Record<string, number> = {};
    for (const e of best.entries) lengths[e.name] = e.length;
    if (Object.keys(lengths).length !== best.entries.length) throw new Error('duplicate statistic names');
    const layout = packLayout(lengths);
    if (layout.totalLength < 1) throw new Error('the statistics are empty');
    return { layout, sites: best.sites };
  } catch (e) {
    throw new StatisticsRoundError('layout-mismatch', (e as Error).message, failures);
  }
}

/** Federated statistics over the connected sites; throws StatisticsRoundError when no sum can be formed. */
export async function runStatisticsRound(deps: StatisticsDeps, request: StatisticsRequest): Promise<StatisticsResult> {
  const { clip } = checkRequest(request, deps);
  if (deps.registry.size < 3) throw new StatisticsRoundError('not-enough-sites', `secure statistics need at least 3 connected sites, have ${deps.registry.size}`);
  let quant: QuantConfig;
  try {
    quant = quantFor({ clip, maxExamples: 1, ...(request.scaleBits !== undefined ? { scaleBits: request.scaleBits } : {}) }, deps.registry.size);
  } catch (e) {
    throw new StatisticsRoundError('bad-request', (e as Error).message);
  }
  const model = deps.model();
  const failures: { siteId: string; reason: string }[] = [];
  // One session id for the layout exchange (statsIns) and the masked run that follows it.
  const sessionId = newSessionId('stats');
  const { layout, sites } = await agreeOnLayout(deps, request, sessionId, model, failures);
  if (request.dp) return dpSum({ deps, request, model, quant, failures }, request.dp, sessionId, sites, layout);
  const run = { deps, request, model, quant, failures };
  if (!request.scaled) return maskedSum(run, { sessionId, siteIds: sites, layout, stage: {} });
  // Scaled: first the exponent bound of every named vector, then the values times 2^-bound (statistic-range.ts).
  const rangeLayout = packLayout(Object.fromEntries(layout.entries.map((e) => [e.name, RANGE_BUCKETS])));
  const range = await maskedSum(run, { sessionId: `${sessionId}.range`, siteIds: sites, layout: rangeLayout, stage: { range: true, computedIn: sessionId } });
  let exponents: Record<string, number>;
  try {
    exponents = exponentsFromRangeSums(range.sums);
  } catch (e) {
    throw new StatisticsRoundError('aborted', (e as Error).message, failures);
  }
  const exps = layout.entries.map((e) => exponents[e.name]);
  deps.logger.info({ code: 'statistics_scaled', name: request.name, minExponent: Math.min(...exps), maxExponent: Math.max(...exps) }, 'statistics scaled by their summed exponent bounds');
  const values = await maskedSum(run, { sessionId, siteIds: range.included, layout, stage: { exponents: exps } });
  return { sums: scaleByExponents(values.sums, exponents, 1), included: values.included };
}

/**
 * A DP release: the quantization leaves headroom for the noise (checkNoiseHeadroom), the noise is planned for the
 * sites that agreed on the layout, and the event is accounted with the sites actually in the sum.
 */
async function dpSum(run: StatisticsRun, dp: StatisticsDpRelease, sessionId: string, sites: string[], layout: PackLayout): Promise<StatisticsResult> {
  const names = layout.entries.map((e) => e.name);
  const dim = layout.entries.filter((e) => isNoisedStatistic(e.name)).reduce((a, e) => a + e.length, 0);
  let plan: StatisticsNoisePlan;
  let scale: number;
  let scaleBits = run.request.scaleBits ?? maxSafeScaleBits(1, sites.length);
  try {
    scale = 1 / (statisticsUnitBound(names) * dp.maxUnits);
    const planFor = (bits: number): StatisticsNoisePlan =>
      planStatisticsNoise({ mode: dp.mode, noiseMultiplier: dp.noiseMultiplier, scaledSensitivity: 1 / dp.maxUnits, dim, scaleBits: bits, sites: sites.length, ...(dp.minSurvivors !== undefined ? { minSurvivors: Math.min(dp.minSurvivors, sites.length) } : {}) });
    plan = planFor(scaleBits);
    // Distributed noise lives inside the 32-bit ring: give up resolution until an 8-sigma excursion cannot wrap.
    for (;;) {
      try {
        if (plan.distributed) checkNoiseHeadroom(2 ** scaleBits, sites.length, plan.distributed.siteSigma);
        break;
      } catch (e) {
        if (!isPrivacyError(e) || scaleBits <= 1) throw e;
        scaleBits--;
        plan = planFor(scaleBits);
      }
    }
  } catch (e) {
    throw new StatisticsRoundError('bad-request', (e as Error).message, run.failures);
  }
  const quant = { clip: 1, scaleBits };
  const noise = plan.distributed ? { siteSigma: plan.distributed.siteSigma, scaledSensitivity: 1 / dp.maxUnits, delta: dp.delta, label: dp.label } : undefined;
  const result = await maskedSum({ ...run, quant }, { sessionId, siteIds: sites, layout, stage: noise ? { noise } : {} });
  if (plan.mode === 'central') addCentralStatisticsNoise(result.sums, isNoisedStatistic, plan.centralStd, dp.noise);
  run.deps.logger.info({ code: 'statistics_dp', name: run.request.name, mode: plan.mode, noiseMultiplier: dp.noiseMultiplier, sites: result.included.length, scaleBits }, 'differentially private statistics released');
  return { ...result, privacy: { event: statisticsEvent(dp.label, plan, result.included.length), plan, scale, scaleBits } };
}

interface StatisticsRun {
  deps: StatisticsDeps;
  request: StatisticsRequest;
  model: { round: number } & EncodedModel;
  quant: QuantConfig;
  /** Sites left out so far, with their reasons (every stage adds to it). */
  failures: { siteId: string; reason: string }[];
}

/** Step 2: one masked sum over `siteIds` (`stage` marks a range or scaled stage of a scaled round). */
async function maskedSum(
  run: StatisticsRun,
  m: { sessionId: string; siteIds: readonly string[]; layout: PackLayout; stage: { range?: true; computedIn?: string; exponents?: number[]; noise?: { siteSigma: number; scaledSensitivity: number; delta: number; label: string } } },
): Promise<StatisticsResult> {
  const { deps, request, model, failures } = run;
  let prepared: PreparedSecAgg;
  try {
    const threshold = request.threshold ?? deps.secure?.threshold;
    prepared = prepareSecAgg({
      sessionId: m.sessionId,
      siteIds: [...m.siteIds],
      vectorLength: m.layout.totalLength,
      quant: run.quant,
      enrollment: deps.enrollment,
      ...(threshold !== undefined ? { threshold } : {}),
      ...(deps.secure?.degree !== undefined ? { degree: deps.secure.degree } : {}),
    });
  } catch (e) {
    throw new StatisticsRoundError('bad-request', (e as Error).message, failures);
  }
  const outcome = await driveSecAgg({
    ...deps,
    purpose: 'statistics',
    round: model.round,
    prepared,
    model,
    setupFor: () => ({
      purpose: 'statistics',
      round: model.round,
      enrolled: prepared.enrolledB64,
      modelId: model.id,
      statistics: { name: request.name, entries: m.layout.entries.map((e) => ({ name: e.name, length: e.length })), ...m.stage },
    }),
    ...(deps.hooks ? { hooks: deps.hooks } : {}),
  });
  failures.push(...outcome.failures.map((f: DriveFailure) => ({ siteId: f.siteId, reason: `${f.stage}: ${f.reason}` })));
  if (!outcome.result) throw new StatisticsRoundError('aborted', outcome.error?.message ?? 'secure aggregation aborted', failures);
  return { sums: unpackVectors(outcome.result.sum, m.layout), included: [...outcome.result.included] };
}
