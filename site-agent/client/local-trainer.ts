/**
 * The contract between the site client and whatever trains locally (the U-Net trainer in site-agent/train,
 * or a toy trainer in tests). The client owns networking; the trainer only sees weights and configs.
 */
import type { EvalConfig, FitConfig, WeightSet } from '../../protocol/index.ts';

export type { FitConfig, EvalConfig };

export interface FitOutput {
  /** Updated weights: same names and shapes as the global model it was given. */
  weights: WeightSet;
  /** Examples used for training this round (FedAvg weight); must be > 0 to count. */
  numExamples: number;
  /** e.g. `{ trainLoss: 0.31 }`. Non-finite values are dropped before sending (JSON has no NaN). */
  metrics: Record<string, number>;
}

export interface EvaluateOutput {
  numExamples: number;
  /** e.g. `{ dice: 0.82, diceClass1: 0.9, loss: 0.2 }`. Non-finite values are dropped before sending. */
  metrics: Record<string, number>;
}

export interface LocalTrainer {
  /**
   * Train from `global` with `config` (`round`, `localEpochs`, `lr`, optional `proximalMu` for FedProx,
   * `keepLocalBatchNorm: true` under FedBN, plus strategy extras). The trainer receives its own copy of `global`.
   */
  fit(global: WeightSet, config: FitConfig): Promise<FitOutput>;
  /** Evaluate `global` on the site's local validation split. */
  evaluate(global: WeightSet, config: EvalConfig): Promise<EvaluateOutput>;
  /**
   * Optional: named statistics of `global` on the site's data for a federated statistics round (example counts,
   * BN statistics, per-class latent sufficient statistics, histograms). Every site must return the same names and
   * lengths for the same request; only the element-wise sum over sites reaches the coordinator (secure aggregation).
   */
  statistics?(global: WeightSet, request: StatisticsRequest): Promise<Record<string, Float32Array>> | Record<string, Float32Array>;
}

/** What a statistics round asks for. */
export interface StatisticsRequest {
  readonly name: string;
  readonly config: Readonly<Record<string, number | string | boolean>>;
}
