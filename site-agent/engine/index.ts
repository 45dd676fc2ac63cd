export { EngineError, type EngineErrorCode } from './errors.ts';
export {
  initEngine,
  resetEngine,
  BACKEND_CANDIDATES,
  type EngineBackend,
  type EngineInfo,
  type BackendAttempt,
  type InitEngineOptions,
} from './select-backend.ts';
export { ensureGradientsRegistered } from './register-gradients.ts';
export { registerNativeBackend, NATIVE_BACKEND, nativeKernelNames } from './native-backend.ts';
export { loadNativeAddon, NATIVE_ADDON_PATH, type NativeAddon, type NativeLoad } from './native-addon.ts';
export {
  registerWasmTrainingKernels,
  wasmConv2DBackpropFilter,
  wasmConv2DBackpropInput,
  wasmMaxPoolGrad,
  wasmTile,
  setWasmIm2colLimit,
} from './wasm-kernels.ts';
export { selfCheck } from './self-check.ts';
export { batchNormTrain, type BatchNormTrainResult } from './kernels/index.ts';
export { registerEngineCommands, formatEngineInfo } from './cli.ts';
export { runTrainBench, type TrainBenchOptions, type TrainBenchResult } from './bench/train-bench.ts';
export {
  REFERENCE_CONFIG,
  convSpecs,
  trainStepFlops,
  createReferenceParams,
  referenceForward,
  referenceTrainStep,
  softmaxCrossEntropy,
  randomBatch,
  type ReferenceUNetConfig,
  type ConvSpec,
} from './bench/reference-unet.ts';
export { startPlanTraining, type PlanTrainingConfig, type PlanTrainingSession } from './plan/plan-training.ts';
export { engineMode, plansEnabled, planSupports, compiledUNet, planInferBatches, planAdaBN, type EngineMode } from './plan/unet-binding.ts';
export { CompiledUNet, emptyHyper, type CompiledProgram, type OpProfile } from './plan/compiled-unet.ts';
export { CompiledTrainer, type CompiledTrainConfig } from './plan/compiled-trainer.ts';
export { productUNetFamily, referenceUNetFamily, type UNetFamily, type ConvUnitNames } from './plan/unet-family.ts';
export { Hyper, type PlanLoss } from './plan/plan-ops.ts';
