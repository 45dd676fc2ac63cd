/**
 * FedAvg (McMahan et al., AISTATS 2017) with Flower's knobs: fraction of sites per round, minimum replies,
 * an evaluation cadence, and extra fit-config keys. FedProx and FedBN are configurations of it (fedprox.ts, fedbn.ts).
 */
import { Rng } from '../../protocol/common/index.ts';
import type { FitConfig, WeightSet } from '../../protocol/index.ts';
import { weightedAverageWeightSets, weightedMetricMeans } from './aggregate.ts';
import type {
  AggregatedFit,
  EvaluateInstruction,
  EvaluateResult,
  FitInstruction,
  FitResult,
  RoundFailure,
  SiteInfo,
  Strategy,
} from './strategy.ts';
import { replyCount } from './strategy.ts';

export interface FedAvgOptions {
  /** Fraction of connected sites asked to train each round (default 1). */
  fractionFit?: number;
  /** Fraction asked to evaluate (default 1; 0 disables evaluation). */
  fractionEvaluate?: number;
  /** Fewest successful fit replies needed to update the model (default 1). */
  minFitResults?: number;
  minEvaluateResults?: number;
  localEpochs?: number;
  lr?: number;
  /** Extra keys merged into every FitConfig (e.g. batchSize). */
  fitExtras?: Record<string, number | string | boolean>;
  /** Seed for site sampling when fractionFit < 1 (reproducible simulations). */
  seed?: number;
  /** Tensors to average; the rest keep the global values (default: all). */
  aggregates?: (name: string) => boolean;
  /** Evaluate the initial model before round 1 (recorded as round 0; default false). */
  evaluateInitialModel?: boolean;
}

export function sampleSites(sites: readonly SiteInfo[], fraction: number, round: number, seed: number): SiteInfo[] {
  const sorted = [...sites].sort((a, b) => (a.siteId < b.siteId ? -1 : a.siteId > b.siteId ? 1 : 0));
  if (fraction >= 1) return sorted;
  if (fraction <= 0) return [];
  const k = Math.max(1, Math.round(fraction * sorted.length));
  // The project's one seeded generator (sampling sites only; no security role).
  return new Rng(seed * 1_000_003 + round).shuffle(sorted).slice(0, k);
}

export class FedAvg implements Strategy {
  readonly name: string = 'fedavg';
  readonly evaluatesInitialModel: boolean;
  protected readonly opts: Required<Omit<FedAvgOptions, 'aggregates' | 'fitExtras' | 'evaluateInitialModel'>> & Pick<FedAvgOptions, 'aggregates' | 'fitExtras'>;

  constructor(opts: FedAvgOptions = {}) {
    this.evaluatesInitialModel = opts.evaluateInitialModel === true;
    this.opts = {
      fractionFit: opts.fractionFit ?? 1,
      fractionEvaluate: opts.fractionEvaluate ?? 1,
      minFitResults: opts.minFitResults ?? 1,
      minEvaluateResults: opts.minEvaluateResults ?? 1,
      localEpochs: opts.localEpochs ?? 1,
      lr: opts.lr ?? 0.01,
      seed: opts.seed ?? 0,
      ...(opts.aggregates ? { aggregates: opts.aggregates } : {}),
      ...(opts.fitExtras ? { fitExtras: opts.fitExtras } : {}),
    };
  }

  protected fitConfig(round: number): FitConfig {
    return { ...(this.opts.fitExtras ?? {}), round, localEpochs: this.opts.localEpochs, lr: this.opts.lr };
  }

  configureFit(round: number, sites: readonly SiteInfo[], _global: WeightSet): FitInstruction[] {
    const config = this.fitConfig(round);
    return sampleSites(sites, this.opts.fractionFit, round, this.opts.seed).map((s) => ({ siteId: s.siteId, config }));
  }

  /** The FedAvg average, or null when fewer than `minFitResults` sites replied (the model is kept). */
  protected average(results: readonly FitResult[], global: WeightSet): WeightSet | null {
    if (replyCount(results) < this.opts.minFitResults || results.length === 0) return null;
    return weightedAverageWeightSets(results, global, this.opts.aggregates);
  }

  aggregatesTensor(name: string): boolean {
    return this.opts.aggregates ? this.opts.aggregates(name) : true;
  }

  aggregateFit(_round: number, results: readonly FitResult[], _failures: readonly RoundFailure[], global: WeightSet): AggregatedFit | null {
    const weights = this.average(results, global);
    if (weights === null) return null;
    return { weights, metrics: weightedMetricMeans(results) };
  }

  configureEvaluate(round: number, sites: readonly SiteInfo[], _global: WeightSet): EvaluateInstruction[] {
    return sampleSites(sites, this.opts.fractionEvaluate, round, this.opts.seed + 1).map((s) => ({ siteId: s.siteId, config: { round } }));
  }

  aggregateEvaluate(_round: number, results: readonly EvaluateResult[], _failures: readonly RoundFailure[]): Record<string, number> | null {
    if (results.length < this.opts.minEvaluateResults || results.length === 0) return null;
    return weightedMetricMeans(results);
  }
}
