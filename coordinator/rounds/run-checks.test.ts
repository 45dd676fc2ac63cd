import { describe, expect, it } from 'vitest';
import { silentLogger, type Logger } from '../../protocol/common/index.ts';
import { CoordinatorError } from '../errors/index.ts';
import type { RoundRecord } from './round-record.ts';
import { checkRunPlan, judgeRun } from './run-checks.ts';

const round = (n: number, aggregated: boolean, extra: Partial<RoundRecord> = {}): RoundRecord => ({
  round: n, meanTrainLoss: null, aggregated, sites: [], failures: [], evalMetrics: null, fitMetrics: {}, startedAt: '', durationMs: 0, ...extra,
});

function warnings(): Logger & { codes: unknown[] } {
  const codes: unknown[] = [];
  const l = { codes, debug() {}, info() {}, error() {}, warn: (o: object) => void codes.push((o as { code?: unknown }).code), child: () => l };
  return l;
}

describe('checkRunPlan', () => {
  const secure = { clip: 8, maxExamples: 100 };
  it('refuses secure aggregation with fewer than 3 sites per round', () => {
    expect(() => checkRunPlan({ rounds: 3, minSites: 2, enrolledSites: 5, minAggregatedFraction: 0.5, secureAggregation: secure }, silentLogger)).toThrow(CoordinatorError);
    expect(() => checkRunPlan({ rounds: 3, minSites: 2, enrolledSites: 5, minAggregatedFraction: 0.5, secureAggregation: secure }, silentLogger)).toThrow(/minSites is 2/);
  });
  it('refuses a threshold above the degree and a fraction outside [0, 1]', () => {
    expect(() => checkRunPlan({ rounds: 3, minSites: 3, enrolledSites: 3, minAggregatedFraction: 0.5, secureAggregation: { ...secure, threshold: 3 } }, silentLogger)).toThrow(/exceeds the neighbour degree 2/);
    expect(() => checkRunPlan({ rounds: 3, minSites: 1, enrolledSites: 1, minAggregatedFraction: 1.5 }, silentLogger)).toThrow(/minAggregatedFraction/);
  });
  it('warns (once, with a code) when no dropout is tolerated, and stays quiet when one is', () => {
    const three = warnings();
    checkRunPlan({ rounds: 3, minSites: 3, enrolledSites: 3, minAggregatedFraction: 0.5, secureAggregation: secure }, three);
    expect(three.codes).toEqual(['secagg_no_dropout_tolerance']);
    const five = warnings();
    checkRunPlan({ rounds: 3, minSites: 5, enrolledSites: 5, minAggregatedFraction: 0.5, secureAggregation: secure }, five);
    expect(five.codes).toEqual([]);
  });
});

describe('judgeRun', () => {
  it('passes an empty run and one with enough aggregated rounds', () => {
    expect(judgeRun([], 0.5).ok).toBe(true);
    expect(judgeRun([round(1, true), round(2, false)], 0.5)).toEqual({ ok: true, rounds: 2, aggregatedRounds: 1, reason: null });
  });
  it('fails a run without any aggregated round even with fraction 0, naming the commonest causes', () => {
    const h = [
      round(1, false, { secureAggregation: { included: [], excluded: ['a'], totalExamples: 0, error: 'below-threshold' } }),
      round(2, false, { strategyError: 'non_finite update' }),
      round(3, false, { secureAggregation: { included: [], excluded: ['a'], totalExamples: 0, error: 'below-threshold' } }),
    ];
    const o = judgeRun(h, 0);
    expect(o.ok).toBe(false);
    expect(o.reason).toMatch(/only 0 of 3 round\(s\) aggregated \(at least 1 needed.*2 round\(s\): below-threshold; 1 round\(s\): non_finite update/);
  });
  it('fails below the configured fraction', () => {
    expect(judgeRun([round(1, true), round(2, false), round(3, false), round(4, false)], 0.5).ok).toBe(false);
  });
});
