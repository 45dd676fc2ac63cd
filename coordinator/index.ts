/** coordinator/: the server side — sessions with sites, the round state machine, strategies, checkpoints, REST. */
export { registerCoordinatorCommands, startCoordinatorFromFiles, coordinatorConfigSchema, type CoordinatorConfig, type CoordinatorCommandOptions } from './cli.ts';
export { startCoordinator, DEFAULT_MIN_AGGREGATED_FRACTION, type CoordinatorOptions, type CoordinatorHandle, type SiteEvents } from './start-coordinator.ts';
export { installProcessGuards, isConnectionScoped, EXIT_INTERNAL_ERROR, type ProcessGuardOptions } from './process-guard.ts';
export { checkRunPlan, judgeRun, MIN_SECURE_SITES, type RunPlan, type RunOutcome } from './run-checks.ts';
export { RoundRunner, CoordinatorError, type Stage, type RoundTimeouts, type RoundEvents } from './round-runner.ts';
export type { RoundRecord, SiteRoundRecord } from './round-history.ts';
export { CheckpointStore, CheckpointError, type Checkpoint } from './checkpoint-store.ts';
export { MetricsRegistry, coordinatorMetrics, type CoordinatorMetrics } from './metrics-registry.ts';
export { createHttpApp, type CoordinatorStatus } from './http-app.ts';
export { SiteConnection, SiteRequestError, type ConnectionState, type SecAggWireStage } from './site-connection.ts';
export { SiteRegistry } from './site-registry.ts';
export {
  runSecureFit,
  validateSecureAggregation,
  aggregatedTensors,
  quantFor,
  SECURE_AGGREGATE_ID,
  type SecureAggregationOptions,
  type SecureFitInput,
  type SecureFitOutcome,
} from './secure-fit.ts';
export { driveSecAgg, type SecAggTestHooks, type SecAggDriveInput, type SecAggDriveOutcome, type DriveFailure } from './secagg-driver.ts';
export {
  writeRunArtifacts,
  runStatisticsSchema,
  FINAL_WEIGHTS_FILE,
  SOURCE_STATS_FILE,
  CLASS_HISTOGRAM_FILE,
  HISTORY_FILE,
  RUN_MANIFEST_FILE,
  PRIVACY_FILE,
  runManifestSchema,
  completedRun,
  type RunManifest,
  type RunStatistics,
  type ArtifactReport,
  type ArtifactSource,
} from './run-artifacts.ts';
export {
  runStatisticsRound,
  StatisticsRoundError,
  type StatisticsRequest,
  type StatisticsResult,
  type StatisticsErrorCode,
  type StatisticsDeps,
} from './statistics-round.ts';
export {
  FedAvg,
  FedProx,
  FedBN,
  FedOpt,
  FedAdam,
  FedYogi,
  FedAdagrad,
  AggregationError,
  weightedMean,
  weightedAverageWeightSets,
  weightedMetricMeans,
  checkUpdateMatches,
  fedOptStep,
  isBatchNormName,
  sampleSites,
  replyCount,
  createStrategy,
  strategySpecSchema,
  STRATEGY_NAMES,
  type StrategySpec,
  type StrategyName,
  type Strategy,
  type SiteInfo,
  type FitInstruction,
  type EvaluateInstruction,
  type FitResult,
  type EvaluateResult,
  type FailureCode,
  type RoundFailure,
  type AggregatedFit,
  type FedAvgOptions,
  type FedProxOptions,
  type FedBNOptions,
  type FedOptOptions,
  type FedOptHyper,
  type ServerOptimizer,
  type AggregationErrorCode,
  type WeightedUpdate,
} from './strategies/index.ts';
export { withDifferentialPrivacy, type PrivacyStatus } from './strategies/index.ts';
