/**
 * engine/kernels: differentiable ops the model builds on directly. This sub-barrel sits below the engine's own
 * barrel (which exports compiled U-Net plans and therefore imports the model), so site-agent/model can use a kernel
 * without an import cycle through site-agent/engine/index.ts.
 */
export { batchNormTrain, type BatchNormTrainResult } from './batch-norm-train.ts';
