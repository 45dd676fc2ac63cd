/**
 * Checks a run's configuration before round 1 (impossible runs are refused, fragile ones announced), and judges a
 * finished run: a run in which too few rounds aggregated did not do its job, whatever else happened.
 */
import type { Logger } from '../../protocol/common/index.ts';
import { defaultDegree, defaultThreshold } from '../../protocol/secagg/index.ts';
import { CoordinatorError } from '../errors/index.ts';
import type { RoundRecord } from './round-record.ts';
import { validateSecureAggregation, type SecureAggregationOptions } from '../workflows/index.ts';

/** Fewest sites secure aggregation and statistics rounds can run with (with 2, each learns the other's vector). */
export const MIN_SECURE_SITES = 3;

/** Default `minAggregatedFraction`: a run in which most rounds kept the old model did not train. */
export const DEFAULT_MIN_AGGREGATED_FRACTION = 0.5;

export interface RunPlan {
  rounds: number;
  minSites: number;
  /** Sites on the allow-list (token enrollments may add more later). */
  enrolledSites: number;
  secureAggregation?: SecureAggregationOptions;
  /** Fraction of rounds that must aggregate for the run to count as done (0..1). */
  minAggregatedFraction: number;
}

/**
 * Throws CoordinatorError('bad_options') for a run that cannot work; logs (warn, code
 * `secagg_no_dropout_tolerance`) a secure configuration in which a single dropout aborts a round.
 */
export function checkRunPlan(plan: RunPlan, logger: Logger): void {
  const f = plan.minAggregatedFraction;
  if (!(f >= 0 && f <= 1)) throw new CoordinatorError('bad_options', `minAggregatedFraction must lie in [0, 1], got ${f}`);
  const secure = plan.secureAggregation;
  if (!secure) return;
  if (plan.minSites < MIN_SECURE_SITES) {
    throw new CoordinatorError(
      'bad_options',
      `secure aggregation needs at least ${MIN_SECURE_SITES} sites in every round, but minSites is ${plan.minSites}: every round would abort (set minSites >= ${MIN_SECURE_SITES})`,
    );
  }
  // The most sites that can ever be summed is the enrolled count (token enrollment can add more: every round's
  // config is checked again for its actual number of sites).
  try {
    validateSecureAggregation(secure, Math.max(plan.minSites, plan.enrolledSites));
  } catch (e) {
    throw new CoordinatorError('bad_options', `secureAggregation: ${(e as Error).message}`);
  }
  const n = plan.minSites;
  const degree = secure.degree ?? defaultDegree(n);
  const threshold = secure.threshold ?? defaultThreshold(degree);
  if (threshold > degree) {
    throw new CoordinatorError('bad_options', `secureAggregation.threshold ${threshold} exceeds the neighbour degree ${degree} of a ${n}-site round: no round could be unmasked`);
  }
  if (threshold === degree) {
    logger.warn(
      { code: 'secagg_no_dropout_tolerance', sites: n, degree, threshold },
      `secure aggregation with ${n} sites (degree ${degree}, threshold ${threshold}) tolerates NO dropout: one site missing a stage after setup aborts the whole round`,
    );
  }
}

export interface RunOutcome {
  ok: boolean;
  rounds: number;
  aggregatedRounds: number;
  /** Why the run failed (null when ok). */
  reason: string | null;
}

/** Judge a finished run: ok when at least one training round aggregated and at least `minFraction` of them did. */
export function judgeRun(all: readonly RoundRecord[], minFraction: number): RunOutcome {
  const history = all.filter((r) => r.round > 0); // round 0 evaluates the initial model: nothing to aggregate
  const rounds = history.length;
  const aggregatedRounds = history.filter((r) => r.aggregated).length;
  if (rounds === 0) return { ok: true, rounds, aggregatedRounds, reason: null };
  const need = Math.max(1, Math.ceil(minFraction * rounds - 1e-9));
  if (aggregatedRounds >= need) return { ok: true, rounds, aggregatedRounds, reason: null };
  const causes = new Map<string, number>();
  for (const r of history) {
    if (r.aggregated) continue;
    const cause = r.secureAggregation?.error ?? r.strategyError ?? (r.failures.length > 0 ? `${r.failures[0].code}: ${r.failures[0].reason}` : 'too few replies');
    causes.set(cause, (causes.get(cause) ?? 0) + 1);
  }
  const top = [...causes].sort((a, b) => b[1] - a[1]).slice(0, 3).map(([c, k]) => `${k} round(s): ${c}`);
  return {
    ok: false,
    rounds,
    aggregatedRounds,
    reason: `only ${aggregatedRounds} of ${rounds} round(s) aggregated (at least ${need} needed, minAggregatedFraction ${minFraction}); ${top.join('; ')}`,
  };
}
