export { AdaptError, type AdaptErrorCode } from './adapt-error.ts';
export type { AdaptReport, AdaptProgress } from './adapt-report.ts';
export { toUnlabeled, validateUnlabeled, type UnlabeledSlices } from './unlabeled-slices.ts';
export { imageBatch, epochBatches, meanEntropy, predictLabels } from './batching.ts';
export { slicedWasserstein, randomUnitProjections } from './sliced-wasserstein.ts';
export {
  cholesky,
  gaussianFromMoments,
  sampleGaussian,
  emptyMoments,
  accumulateMoments,
  symmetrizeMoments,
  addMoments,
  type Gaussian,
  type LatentMoments,
} from './gaussian.ts';
export { emdMomentum, transferabilityWeights } from './osuda-math.ts';
export {
  computeSourceStats,
  computeSourceStatsAsync,
  packageLabelCodes,
  poolSourceStats,
  saveSourceStats,
  loadSourceStats,
  parseSourceStats,
  bnMeanVar,
  classPriors,
  checkStatsMatchModel,
  SourceStatsSchema,
  SOURCE_STATS_VERSION,
  type SourceStats,
  type SourceStatsOptions,
} from './source-stats.ts';
export { adaptAdaBN, type AdaBnOptions } from './adabn.ts';
export { adaptTent, bnAffineVariables, type TentOptions } from './tent.ts';
export { adaptOsuda, hbsLoss, type OsudaOptions } from './osuda.ts';
export { adaptGmmSwd, fitSourceGmm, apportion, type SourceGmm, type GmmFitOptions, type GmmSwdOptions, selectTrainable, targetSwd } from './gmm-swd.ts';
export { agreeWithMemory, classBalancedPseudoLabels, classBalancedSelection, type PseudoLabels } from './pseudo-labels.ts';
export { predictedProportions, priorDivergence, RESTART_SELECTIONS, type RestartSelection } from './restart-selection.ts';
export { bandKnots, bandPermutations, intensityBands, permutationValues } from './band-permutation.ts';
export {
  fitInputAdapter,
  negateFirstConv,
  POLARITY_CHECK,
  GUARDED_WIDE_SEARCH,
  FIRST_CONV,
  type InputAdapterOptions,
  type InputAdapterResult,
  type WideSearchOptions,
  type AdapterCandidate,
  type AdapterStart,
} from './input-adapter.ts';
export {
  applyCurve,
  applyCurveToArray,
  basisMatrix,
  curvePolarity,
  evalCurve,
  identityCurve,
  makeCurve,
  parseCurve,
  quantileKnots,
  saveCurve,
  loadCurve,
  IntensityCurveSchema,
  type IntensityCurve,
} from './intensity-curve.ts';
export { teacherPass, prototypeSums, addPrototypeSums, denoise, type DplOptions, type PrototypeSums, type TeacherPass, type DenoisedLabels } from './denoised-pseudo-labels.ts';
export { adaptMeanTeacher, MeanTeacherSession, classWeights, frequencyWeights, keptClassCounts, type MeanTeacherOptions, type ClassBalance } from './mean-teacher.ts';
export { JointTargetSite, fitJointAdapter, jointStatisticsVectors, classMassVectors, jointStatisticsFromVectors, JOINT_ADAPT_REQUEST, type JointSiteOptions, type JointMethod, type PooledStatistics } from './joint-target-site.ts';
export { choosePooledBn, meanTargetEntropy, targetBnMomentSums, bnMomentVectors, bnMomentsFromVectors, addBnMomentSums, mixBnMomentSums, setBnFromMomentSums, type BnMomentSums } from './joint-bn-moments.ts';
export { JointCurveSite, jointCurveOptions, adamState, adamStep, preferPooled, type JointCurveOptions, type AdamState } from './joint-input-curve.ts';
export { RatioEntropySession, normalisedPrior, type RatioEntropySessionOptions } from './ratio-entropy-session.ts';
export { adaptRatioEntropy, ratioDivergence, type RatioEntropyOptions } from './ratio-entropy.ts';
export { strongAugment, type StrongAugmentOptions } from './strong-augment.ts';
export { applyBiasCorrection, correctBiasField, resolveBiasCorrection, BiasCorrectionSchema, DEFAULT_BIAS_CORRECTION, type BiasCorrection, type BiasCorrectionOptions, type BiasCorrectionResult } from './bias-correction.ts';
export { adapt, adaptWithLabels, isAdaptMethod, requestedAdapter, ADAPT_METHODS, type AdaptMethod, type AdaptOptions, type StageOptions } from './adapt.ts';
export { evaluateSegmentation, scorePredictions, type SegmentationEvaluation } from './evaluate.ts';
export { registerAdaptCommands } from './adapt-command.ts';
export { labelFreeScores, labelAgreement, type LabelFreeScores } from './label-free-scores.ts';
export { classMean, formatTypicality, pixelMean, type LatentTypicality } from './latent-typicality.ts';
export { fallbackNote, judgeAdaptation, SAFEGUARD_FALLBACK, SAFEGUARD_FALLBACK_NOTE, type SafeguardCode, type SafeguardOptions, type SafeguardVerdict } from './safeguard.ts';
export { dpSourceStatsVectors, dpSourceStatsVectorsAsync, dpClassHistogramVectors, dpClassHistogramVectorsAsync } from './dp-source-stats.ts';
