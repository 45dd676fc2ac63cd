/**
 * Differential privacy: the RDP accountant of the sampled Gaussian mechanism (Mironov, Talwar, Zhang 2019),
 * composition in a ledger, the (epsilon, delta) conversion of Balle et al. 2020 (Thm 21) as Opacus does it,
 * calibration of the noise multiplier, and the noise primitives. Pure: imports nothing of ours outside protocol/.
 */
export { PrivacyError, isPrivacyError, type PrivacyErrorCode } from './privacy-error.ts';
export { erfc, logErfc } from './log-erfc.ts';
export { sampledGaussianRdp, computeRdp, logAdd, logSub } from './rdp.ts';
export { DEFAULT_ORDERS, epsilonFromRdp, checkDelta, type PrivacySpent } from './epsilon.ts';
export {
  PrivacyLedger,
  eventRdp,
  type PrivacyEvent,
  type SampledGaussianEvent,
  type ZcdpEvent,
  type DistributedDiscreteGaussianEvent,
  type LedgerReport,
} from './ledger.ts';
export {
  sampledGaussianEpsilon,
  calibrateNoiseMultiplier,
  MAX_NOISE_MULTIPLIER,
  type SampledGaussianRun,
  type CalibrationTarget,
  type Calibration,
} from './calibrate.ts';
export { registerPrivacyCommands } from './cli.ts';
export { type NoiseSource, cryptoNoiseSource, seededNoiseSource, uniformInt } from './noise-source.ts';
export { fillGaussian, addGaussianNoise, gaussian } from './gaussian-noise.ts';
export {
  sampleDiscreteGaussian,
  sampleDiscreteLaplace,
  fillDiscreteGaussian,
  discreteGaussianVariance,
  bernoulliExp,
} from './discrete-gaussian.ts';
export { l2Norm, clipL2InPlace, type ClipResult, type Vector } from './clipping.ts';
export {
  adaptiveNoiseSplit,
  nextClipNorm,
  ADAPTIVE_CLIPPING_DEFAULTS,
  type AdaptiveClippingConfig,
  type AdaptiveNoise,
} from './adaptive-clipping.ts';
export {
  planDistributedDp,
  roundedSensitivity,
  ddgTau,
  ddgRdp,
  ddgEvent,
  addDiscreteGaussianShare,
  checkNoiseHeadroom,
  type DistributedDpPlan,
  type DistributedDpParams,
} from './distributed-noise.ts';
export {
  DP_CONFIG_KEYS,
  distributedDpFromConfig,
  dpFitContribution,
  type DistributedDpFitConfig,
  type DpFitContribution,
} from './dp-fit-contribution.ts';
export {
  DP_SGD_METRIC,
  dpSgdConfigSchema,
  dpSgdSampling,
  planDpSgd,
  type DpSgdConfig,
  type DpSgdPlan,
  type DpSgdRunShape,
} from './dp-sgd-plan.ts';
export { DpGradientAccumulator, poissonSample } from './dp-sgd-step.ts';
export {
  statisticsDpConfigSchema,
  STATISTICS_DP_KEYS,
  statisticsDpToConfig,
  statisticsDpFromConfig,
  privacyUnits,
  sumClippedUnits,
  statisticsNoiseMultiplier,
  planStatisticsNoise,
  statisticsEvent,
  addCentralStatisticsNoise,
  addStatisticsNoiseShare,
  composeRunPrivacy,
  type StatisticsDpConfig,
  type StatisticsDpSettings,
  type StatisticsDpRequest,
  type StatisticsNoisePlan,
  type UnitSum,
  type RunPrivacyReport,
} from './dp-statistics.ts';
export {
  sourceStatsUnitBound,
  CLASS_HISTOGRAM_UNIT_BOUND,
  sourceStatsNameUnit,
  sourceStatsUnitVector,
  classHistogramUnitVector,
  isNoisedStatistic,
  statisticsUnitBound,
  statisticsScale,
  symmetricEigen,
  unscaleSourceStatsSums,
  postProcessDpSourceStats,
  unscaleClassHistogramSums,
  type SourceStatsClips,
} from './dp-source-stats.ts';
