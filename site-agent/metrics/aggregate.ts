/**
 * Aggregation of per-volume metrics over a set of volumes, NaN-aware like MONAI's `do_metric_reduction`
 * ("mean" drops NaN), with infinities counted separately instead of poisoning (or silently vanishing from) the mean.
 */
import type { CaseMetrics, ClassMetrics } from './segmentation-metrics.ts';

/** Summary of one metric over volumes: mean/std of finite values, plus what was left out and why. */
export interface MetricSummary {
  /** Mean of the finite values; NaN when there are none. */
  readonly mean: number;
  /** Population standard deviation of the finite values; NaN when there are none. */
  readonly std: number;
  /** Number of finite values averaged. */
  readonly n: number;
  /** Values that were NaN (empty ground truth). */
  readonly nanCount: number;
  /** Values that were infinite (empty prediction); reported, never averaged in. */
  readonly infiniteCount: number;
}

export interface MetricsSummary {
  readonly dice: MetricSummary;
  readonly iou: MetricSummary;
  readonly hd95: MetricSummary;
  readonly assd: MetricSummary;
}

export interface AggregateResult {
  /** Per foreground class (index i is class i + 1), over volumes. */
  readonly perClass: MetricsSummary[];
  /** The per-volume class means (CaseMetrics.mean), summarised over volumes. */
  readonly mean: MetricsSummary;
  /** Total infinite entries over all volumes and classes. */
  readonly infiniteCount: number;
  readonly numCases: number;
}

/** Mean/std summary of a list of values with NaN and Infinity accounted for. */
export function summarize(values: readonly number[]): MetricSummary {
  let n = 0;
  let s = 0;
  let nanCount = 0;
  let infiniteCount = 0;
  for (const v of values) {
    if (Number.isNaN(v)) nanCount++;
    else if (!Number.isFinite(v)) infiniteCount++;
    else {
      n++;
      s += v;
    }
  }
  if (n === 0) return { mean: NaN, std: NaN, n, nanCount, infiniteCount };
  const mean = s / n;
  let ss = 0;
  for (const v of values) if (Number.isFinite(v)) ss += (v - mean) * (v - mean);
  return { mean, std: Math.sqrt(ss / n), n, nanCount, infiniteCount };
}

function summarizeMetrics(rows: readonly ClassMetrics[]): MetricsSummary {
  return {
    dice: summarize(rows.map((r) => r.dice)),
    iou: summarize(rows.map((r) => r.iou)),
    hd95: summarize(rows.map((r) => r.hd95)),
    assd: summarize(rows.map((r) => r.assd)),
  };
}

/** Summaries over volumes, per class and of the per-volume means. */
export function aggregateCases(results: readonly CaseMetrics[]): AggregateResult {
  const numFg = results.length > 0 ? results[0].perClass.length : 0;
  const perClass: MetricsSummary[] = [];
  for (let c = 0; c < numFg; c++) perClass.push(summarizeMetrics(results.map((r) => r.perClass[c])));
  return {
    perClass,
    mean: summarizeMetrics(results.map((r) => r.mean)),
    infiniteCount: results.reduce((p, r) => p + r.infiniteCount, 0),
    numCases: results.length,
  };
}
