/**
 * The Strategy contract, Flower-shaped: configure a round, aggregate its replies with failures passed in
 * explicitly, and return null to keep the current model. No sockets or files inside a strategy.
 */
import type { WeightSet, EvalConfig, FitConfig } from '../../protocol/index.ts';
import type { RoundFailure } from '../../protocol/contracts/index.ts';

export interface SiteInfo {
  readonly siteId: string;
}

export interface FitInstruction {
  readonly siteId: string;
  readonly config: FitConfig;
}

export interface EvaluateInstruction {
  readonly siteId: string;
  readonly config: EvalConfig;
}

/** A validated fit reply (names and shapes already checked against the global model). */
export interface FitResult {
  readonly siteId: string;
  readonly weights: WeightSet;
  readonly numExamples: number;
  readonly metrics: Readonly<Record<string, number>>;
  /**
   * Set on the one virtual result of a secure-aggregation round: the sites whose updates it sums (its weights are
   * already their example-weighted mean, `numExamples` their total). Counts as that many replies.
   */
  readonly aggregateOf?: readonly string[];
}

/** How many site replies a list of fit results stands for (a secure aggregate stands for all its sites). */
export function replyCount(results: readonly FitResult[]): number {
  return results.reduce((s, r) => s + (r.aggregateOf?.length ?? 1), 0);
}

export interface EvaluateResult {
  readonly siteId: string;
  readonly numExamples: number;
  readonly metrics: Readonly<Record<string, number>>;
}

// Why a selected site did not contribute: part of the round record contract (protocol/contracts/round-record.ts).
export type { FailureCode, RoundFailure } from '../../protocol/contracts/index.ts';

export interface AggregatedFit {
  readonly weights: WeightSet;
  readonly metrics: Record<string, number>;
}

export interface Strategy {
  readonly name: string;
  /**
   * Flower's `initialize_parameters`: the starting global model, or null to start from the coordinator's initial
   * weights. Called once, before round 1 of a new run (never on resume from a checkpoint).
   */
  initialize?(initial: WeightSet): WeightSet | null;
  /**
   * When true, the sites evaluate the initial model before round 1 (`configureEvaluate(0, ...)`,
   * `aggregateEvaluate(0, ...)`), recorded as round 0: the untrained model's scores.
   */
  readonly evaluatesInitialModel?: boolean;
  /** Which sites train this round and with what config. An empty list skips the round. */
  configureFit(round: number, sites: readonly SiteInfo[], global: WeightSet): FitInstruction[];
  /** New global weights, or null to keep `global` (too few replies, say). Must not mutate its inputs. */
  aggregateFit(round: number, results: readonly FitResult[], failures: readonly RoundFailure[], global: WeightSet): AggregatedFit | null;
  /**
   * Whether `aggregateFit` changes tensor `name` from the sites' updates (default: yes). Under secure aggregation
   * only these tensors go into the masked vector; the others (FedBN's batch-norm tensors) never leave the site.
   */
  aggregatesTensor?(name: string): boolean;
  configureEvaluate(round: number, sites: readonly SiteInfo[], global: WeightSet): EvaluateInstruction[];
  aggregateEvaluate(round: number, results: readonly EvaluateResult[], failures: readonly RoundFailure[]): Record<string, number> | null;
  /** Server-optimizer state to checkpoint (FedAdam's moments); absent for stateless strategies. */
  exportState?(): WeightSet;
  importState?(state: WeightSet): void;
}
