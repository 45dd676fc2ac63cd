/**
 * `summary.json` of a federated simulation (schema `fedsfda.simulate/v1`, documented in the README),
 * built from the coordinator's round history, and the table printed at the end of a run.
 */
import Table from 'cli-table3';
import { formatDistance, tableStyle } from '../../site-agent/report/index.ts';
import { EVAL_METRIC, metricValue, readDice, type RoundRecord } from '../../protocol/contracts/index.ts';
import type { PrivacyStatus } from '../../coordinator/strategies/index.ts';
import type { ClassHistogramReport } from '../../protocol/index.ts';
import type { RunPrivacyReport } from '../../protocol/privacy/index.ts';

export interface DiceSummary {
  /** Mean over foreground classes of the per-volume Dice, averaged over the site's validation volumes. */
  readonly mean: number | null;
  /** Index i = class i + 1. */
  readonly perClass: (number | null)[];
}

export interface SiteSummary {
  readonly id: string;
  readonly shift: unknown;
  readonly trainSlices: number | null;
  readonly valSlices: number | null;
  /** Training pixels per class (index = class): the site's label distribution, for the non-IID report. */
  readonly classHistogram: number[] | null;
  /** The untrained initial global model on the site's validation split (measured before round 1's training). */
  readonly untrainedDice: DiceSummary;
  /** The final global model after the last round. */
  readonly dice: DiceSummary;
  /** The final model fine-tuned on the site's own data (`training.personalizeEpochs`), or null. */
  readonly personalizedDice: DiceSummary | null;
  readonly iou: number | null;
  readonly hd95Mm: number | null;
  readonly assdMm: number | null;
  /** Count of (volume, class, metric) entries that were infinite (empty prediction with non-empty truth). */
  readonly infiniteDistances: number | null;
  /** Sample-level DP-SGD (training.dpSgd): what this site spent, from its own ledger; null without DP-SGD. */
  readonly dpSgd: { readonly epsilon: number; readonly delta: number; readonly steps: number; readonly noiseMultiplier: number } | null;
}

export interface SimulationSummary {
  readonly schema: 'fedsfda.simulate/v1';
  readonly scenario: string;
  readonly startedAt: string;
  readonly durationMs: number;
  /** True when the run was stopped (SIGINT/SIGTERM) before its last round: `rounds` holds those that completed. */
  readonly interrupted: boolean;
  readonly backend: string;
  readonly config: unknown;
  readonly sites: SiteSummary[];
  readonly rounds: { round: number; meanTrainLoss: number | null; meanEvalDice: number | null; durationMs: number; failures: number }[];
  /** Files in the run folder a new hospital needs for `fedsfda adapt` (null when not produced). */
  readonly artifacts: { readonly model: string | null; readonly sourceStats: string | null };
  /**
   * The non-IID report (protocol/class-histogram-vectors.ts): `secure` is what the coordinator computed from masked
   * sums (class-histogram.json; null when it did not run, e.g. fewer than 3 sites), `inClear` the same report from
   * the sites' own histograms, which only a simulation can see (the check that the secure one is right).
   */
  readonly nonIid: { readonly secure: ClassHistogramReport | null; readonly inClear: ClassHistogramReport | null };
  /** Differential privacy spent by the run (epsilon, delta, per release; privacy.json), or null without DP. */
  readonly privacy: PrivacyStatus | null;
  /**
   * The whole ledger (privacy-ledger.json): training and the shared statistics' releases composed in RDP (each part's
   * epsilon and the total), or null when nothing is DP.
   */
  readonly privacyLedger: RunPrivacyReport | null;
  /** Peak resident memory of the run's processes, as each reported when done (null: not reported, e.g. interrupted). */
  readonly memory: MemorySummary | null;
  /** Unweighted means over sites. */
  readonly meanDice: number | null;
  readonly meanUntrainedDice: number | null;
  /** Mean over sites of `personalizedDice.mean` (null without personalisation). */
  readonly meanPersonalizedDice: number | null;
}

export interface MemorySummary {
  readonly coordinatorPeakRssMb: number | null;
  readonly sitesPerProcess: number;
  readonly siteProcesses: number;
  /** Over the site processes that reported: the largest peak, and the sum of the peaks (an upper bound on their total). */
  readonly sitePeakRssMbMax: number | null;
  readonly sitePeakRssMbSum: number | null;
}

/** The memory report from the processes' peak RSS in bytes. */
export function memorySummary(m: { coordinatorPeakRssBytes: number | null; sitesPerProcess: number; siteProcessPeakRssBytes: (number | null)[] }): MemorySummary {
  const mb = (b: number): number => Math.round((b / 2 ** 20) * 10) / 10;
  const sites = m.siteProcessPeakRssBytes.filter((b): b is number => b !== null);
  return {
    coordinatorPeakRssMb: m.coordinatorPeakRssBytes === null ? null : mb(m.coordinatorPeakRssBytes),
    sitesPerProcess: m.sitesPerProcess,
    siteProcesses: m.siteProcessPeakRssBytes.length,
    sitePeakRssMbMax: sites.length ? mb(Math.max(...sites)) : null,
    sitePeakRssMbSum: sites.length ? mb(sites.reduce((a, b) => a + b, 0)) : null,
  };
}

/** Dice overall and per class of a metric record (names: protocol/contracts/metric-names.ts). */
function dicePart(metrics: Record<string, number> | null | undefined, numClasses: number): DiceSummary {
  return readDice(metrics, numClasses);
}

function meanOf(values: (number | null)[]): number | null {
  const v = values.filter((x): x is number => x !== null);
  return v.length === 0 ? null : v.reduce((a, b) => a + b, 0) / v.length;
}

export function buildSummary(args: {
  artifacts: SimulationSummary['artifacts'];
  nonIid: SimulationSummary['nonIid'];
  privacy?: PrivacyStatus | null;
  privacyLedger?: RunPrivacyReport | null;
  scenario: string;
  startedAt: Date;
  backend: string;
  config: unknown;
  numClasses: number;
  /** The run was stopped before its last round (default false). */
  interrupted?: boolean;
  sites: {
    id: string;
    shift: unknown;
    trainSlices: number | null;
    valSlices: number | null;
    classHistogram: number[] | null;
    personalizedMetrics?: Record<string, number> | null;
    dpSgd?: SiteSummary['dpSgd'];
  }[];
  history: RoundRecord[];
  memory?: MemorySummary | null;
}): SimulationSummary {
  // Round 0 is the coordinator's evaluation of the untrained initial model (Strategy.evaluatesInitialModel).
  const initialRound = args.history.find((r) => r.round === 0);
  const trained = args.history.filter((r) => r.round > 0);
  const last = trained[trained.length - 1];
  const sites: SiteSummary[] = args.sites.map((s) => {
    const initial = initialRound?.sites.find((r) => r.siteId === s.id)?.evalMetrics;
    const final = last?.sites.find((r) => r.siteId === s.id)?.evalMetrics;
    const { personalizedMetrics, dpSgd, ...site } = s;
    return {
      ...site,
      dpSgd: dpSgd ?? null,
      untrainedDice: dicePart(initial, args.numClasses),
      dice: dicePart(final, args.numClasses),
      personalizedDice: personalizedMetrics ? dicePart(personalizedMetrics, args.numClasses) : null,
      iou: metricValue(final, EVAL_METRIC.iou),
      hd95Mm: metricValue(final, EVAL_METRIC.hd95),
      assdMm: metricValue(final, EVAL_METRIC.assd),
      infiniteDistances: metricValue(final, EVAL_METRIC.infiniteDistances),
    };
  });
  return {
    schema: 'fedsfda.simulate/v1',
    scenario: args.scenario,
    startedAt: args.startedAt.toISOString(),
    durationMs: Date.now() - args.startedAt.getTime(),
    interrupted: args.interrupted ?? false,
    backend: args.backend,
    config: args.config,
    sites,
    rounds: trained.map((r) => ({
      round: r.round,
      meanTrainLoss: r.meanTrainLoss,
      meanEvalDice: metricValue(r.evalMetrics, EVAL_METRIC.dice),
      durationMs: r.durationMs,
      failures: r.failures.length,
    })),
    artifacts: args.artifacts,
    nonIid: args.nonIid,
    privacy: args.privacy ?? null,
    privacyLedger: args.privacyLedger ?? null,
    memory: args.memory ?? null,
    meanDice: meanOf(sites.map((s) => s.dice.mean)),
    meanUntrainedDice: meanOf(sites.map((s) => s.untrainedDice.mean)),
    meanPersonalizedDice: meanOf(sites.map((s) => s.personalizedDice?.mean ?? null)),
  };
}

const fmt = (v: number | null, digits = 3): string => (v === null ? 'n/a' : v.toFixed(digits));

/** The per-site results table printed at the end of `fedsfda simulate`. */
export function formatSummaryTable(summary: SimulationSummary): string {
  const numFg = summary.sites[0]?.dice.perClass.length ?? 0;
  const tuned = summary.sites.some((s) => s.personalizedDice !== null);
  const table = new Table({
    head: ['site', 'scanner', ...Array.from({ length: numFg }, (_, i) => `Dice c${i + 1}`), 'Dice mean', 'untrained', ...(tuned ? ['fine-tuned'] : []), 'HD95 mm', 'ASSD mm'],
    style: tableStyle(),
  });
  for (const s of summary.sites) {
    table.push([
      s.id,
      typeof s.shift === 'string' ? s.shift : 'custom',
      ...s.dice.perClass.map((v) => fmt(v)),
      fmt(s.dice.mean),
      fmt(s.untrainedDice.mean),
      ...(tuned ? [fmt(s.personalizedDice?.mean ?? null)] : []),
      // An infinite distance (empty prediction, non-empty truth) is both an infinite HD95 and an infinite ASSD.
      formatDistance(s.hd95Mm, s.infiniteDistances === null ? null : s.infiniteDistances / 2),
      formatDistance(s.assdMm, s.infiniteDistances === null ? null : s.infiniteDistances / 2),
    ]);
  }
  return table.toString();
}
