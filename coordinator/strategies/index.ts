export {
  AggregationError,
  weightedMean,
  weightedAverageWeightSets,
  weightedMetricMeans,
  checkUpdateMatches,
  type AggregationErrorCode,
  type WeightedUpdate,
} from './aggregate.ts';
export type {
  Strategy,
  SiteInfo,
  FitInstruction,
  EvaluateInstruction,
  FitResult,
  EvaluateResult,
  FailureCode,
  RoundFailure,
  AggregatedFit,
} from './strategy.ts';
export { replyCount } from './strategy.ts';
export { FedAvg, sampleSites, type FedAvgOptions } from './fedavg.ts';
export { FedProx, type FedProxOptions } from './fedprox.ts';
export { FedBN, isBatchNormName, type FedBNOptions } from './fedbn.ts';
export { FedOpt, FedAdam, FedYogi, FedAdagrad, fedOptStep, type ServerOptimizer, type FedOptHyper, type FedOptOptions } from './fed-opt.ts';
export { createStrategy, strategySpecSchema, STRATEGY_NAMES, type StrategySpec, type StrategyName } from './create-strategy.ts';
export { DpFedAvg, hasPrivacyAccounting, type DpFedAvgOptions, type DpClipping, type PrivacyStatus, type PrivacyAccounting } from './dp-fedavg.ts';
export { differentialPrivacyConfigSchema, withDifferentialPrivacy, resolveNoiseMultiplier, type DifferentialPrivacyConfig, type DpRunShape } from './dp-config.ts';
