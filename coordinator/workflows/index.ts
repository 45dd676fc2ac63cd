/**
 * coordinator/workflows/: what happens between the strategy's instructions and its aggregation — the plain and the
 * secure fit workflows, federated evaluation, federated statistics, and the SecAgg+ session they share.
 */
export type { FitWorkflow, FitInput, FitOutcome, SecureRoundInfo, EncodedModel, ExchangeContext, SiteReply } from './fit-workflow.ts';
export { PlainFitWorkflow } from './plain-fit.ts';
export {
  SecureFitWorkflow,
  validateSecureAggregation,
  aggregatedTensors,
  quantFor,
  SECURE_AGGREGATE_ID,
  type SecureAggregationOptions,
} from './secure-fit.ts';
export { runEvaluation, type EvaluationOutcome } from './evaluate.ts';
export {
  runStatisticsRound,
  StatisticsRoundError,
  type StatisticsRequest,
  type StatisticsResult,
  type StatisticsDpRelease,
  type StatisticsPrivacy,
  type StatisticsErrorCode,
  type StatisticsDeps,
} from './statistics.ts';
export {
  driveSecAgg,
  prepareSecAgg,
  newSessionId,
  type SecAggTestHooks,
  type SecAggMonitor,
  type SecAggPlan,
  type PreparedSecAgg,
  type SecAggDriveInput,
  type SecAggDriveOutcome,
  type DriveFailure,
} from './secagg-session.ts';
export { failureOf, failureCodeOf } from './failures.ts';
