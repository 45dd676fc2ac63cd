export { BN_EPSILON, batchNormApply, channelMoments } from './batch-norm.ts';
export { ModelError, type ModelErrorCode } from './model-error.ts';
export { UNetConfigSchema, parseUNetConfig, channelsAt, normalizationOf, type Normalization, type UNetConfig } from './unet-config.ts';
export { GROUP_NORM_MAX_GROUPS, groupNormApply, groupNormGroups } from './group-norm.ts';
export { buildLayout, type ParameterKind, type ParamSpec, type UNetLayout } from './unet-params.ts';
export {
  createUNet,
  type UNet,
  type BatchNormStats,
  type ForwardOptions,
  type ForwardResult,
  type SetWeightsOptions,
} from './unet.ts';
export {
  saveModel,
  loadModel,
  readModelManifest,
  MODEL_FORMAT_VERSION,
  MODEL_JSON,
  WEIGHTS_BIN,
  type ModelManifest,
} from './model-io.ts';
export { inferUNetConfig } from './infer-config.ts';
export { loadModelFromPath } from './load-model-path.ts';
