/** The round record from what a round's stages produced (per-site numbers, failures, secure-aggregation facts). */
import type { EvaluateResult, FitResult, RoundFailure } from '../strategies/index.ts';
import { weightedMetricMeans } from '../strategies/index.ts';
import type { SecureRoundInfo } from '../workflows/index.ts';
import type { RoundRecord, SiteRoundRecord } from './round-record.ts';

export interface RoundFacts {
  readonly round: number;
  readonly fit: readonly FitResult[];
  readonly evaluate: readonly EvaluateResult[];
  readonly failures: readonly RoundFailure[];
  readonly aggregated: boolean;
  readonly fitMetrics: Record<string, number>;
  readonly evalMetrics: Record<string, number> | null;
  readonly strategyError: string | null;
  readonly secure: SecureRoundInfo | undefined;
  /** Date.now() when the round started. */
  readonly started: number;
}

export function buildRoundRecord(f: RoundFacts): RoundRecord {
  const sites = new Map<string, SiteRoundRecord>();
  const site = (siteId: string): SiteRoundRecord => {
    let s = sites.get(siteId);
    if (!s) sites.set(siteId, (s = { siteId, numExamples: 0, trainLoss: null, fitMetrics: {}, evalNumExamples: null, evalMetrics: null }));
    return s;
  };
  for (const r of f.fit) {
    if (r.aggregateOf) {
      // Secure aggregation: per-site counts and losses are unknown to the coordinator (only their sums are).
      for (const id of r.aggregateOf) site(id).numExamples = null;
      continue;
    }
    const s = site(r.siteId);
    s.numExamples = r.numExamples;
    s.fitMetrics = { ...r.metrics };
    s.trainLoss = Number.isFinite(r.metrics.trainLoss) ? r.metrics.trainLoss : null;
  }
  for (const r of f.evaluate) {
    const s = site(r.siteId);
    s.evalNumExamples = r.numExamples;
    s.evalMetrics = { ...r.metrics };
  }
  const withLoss = f.fit.filter((r) => Number.isFinite(r.metrics.trainLoss)).map((r) => ({ numExamples: r.numExamples, metrics: { trainLoss: r.metrics.trainLoss } }));
  const record: RoundRecord = {
    round: f.round,
    meanTrainLoss: withLoss.length > 0 ? weightedMetricMeans(withLoss).trainLoss : null,
    aggregated: f.aggregated,
    sites: [...sites.values()].sort((a, b) => (a.siteId < b.siteId ? -1 : 1)),
    failures: [...f.failures],
    evalMetrics: f.evalMetrics,
    fitMetrics: f.fitMetrics,
    startedAt: new Date(f.started).toISOString(),
    durationMs: Date.now() - f.started,
  };
  if (f.secure) record.secureAggregation = { ...f.secure };
  if (f.strategyError !== null) record.strategyError = f.strategyError;
  return record;
}
