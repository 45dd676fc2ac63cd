/**
 * Contracts shared by the coordinator, the site agent and the simulations (no tfjs, no I/O): metric names, tensor-name
 * roles, the source-statistics package and the round record. Each has one home here; everyone imports it.
 */
export {
  FIT_METRIC,
  EVAL_METRIC,
  metricValue,
  perClassMetric,
  readDice,
  segmentationMetricRecord,
  type DiceReading,
  type PerClassMetric,
  type SegmentationScores,
} from './metric-names.ts';
export {
  BN_AFFINE_PARTS,
  BN_STAT_PARTS,
  BOTTLENECK_BLOCK,
  FIRST_CONV,
  HEAD_BIAS,
  HEAD_WEIGHT,
  batchNormLayerName,
  batchNormTensorName,
  convWeightName,
  decoderBlock,
  encoderBlock,
  groupNormLayerName,
  headDimensions,
  isBatchNormTensor,
  tensorRole,
  upConvBiasName,
  upConvWeightName,
  type BatchNormPart,
  type TensorRole,
} from './tensor-names.ts';
export {
  BnMomentsSchema,
  SOURCE_STATS_KIND,
  SOURCE_STATS_VERSION,
  SourceStatsSchema,
  type BnMoments,
  type LatentMomentsJson,
  type SourceStats,
} from './source-stats.ts';
export {
  FAILURE_CODES,
  roundFailureSchema,
  roundRecordSchema,
  siteRoundRecordSchema,
  type FailureCode,
  type RoundFailure,
  type RoundRecord,
  type SiteRoundRecord,
} from './round-record.ts';
