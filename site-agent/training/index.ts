/** site-agent/training/: local training of the U-Net (losses, optimizer, batches, trainLocal, DP-SGD, step profile). */
export { TrainError, type TrainErrorCode } from './train-error.ts';
export {
  crossEntropyLoss,
  softDiceLoss,
  ceDiceLoss,
  entropyLoss,
  segmentationLoss,
  DICE_SMOOTH,
  type LossKind,
} from './losses.ts';
export { createOptimizer, type OptimizerConfig, type TrainOptimizer } from './optimizer.ts';
export { makeBatch, checkDataset, checkImages } from './batches.ts';
export { trainLocal, type TrainConfig, type TrainResult } from './train-local.ts';
export { trainLocalDpSgd, type DpSgdTrainConfig, type DpSgdTrainResult } from './dp-sgd.ts';
export { DpSgdSession } from './dp-sgd-session.ts';
export { profileTrainStep, type ProfileOptions, type ProfileResult, type KernelUse } from './profile-train-step.ts';
export { makeSquaresDataset } from './squares-fixture.ts';
export { yieldToEventLoop, runSteps, runStepsYielding } from './yield-steps.ts';
export { augmentDataset, augmentSlice, roundAugmenter, IntensityAugmentSchema, type IntensityAugmentOptions } from './intensity-augment.ts';
export { BiasFieldAugmentSchema, GinSchema, type BiasFieldAugmentOptions, type GinOptions } from './random-intensity-maps.ts';
