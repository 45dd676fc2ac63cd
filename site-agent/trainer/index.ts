export { UNetTrainer, type UNetTrainerOptions, type FitRequest, type FitOutcome, type EvaluateOutcome } from './unet-trainer.ts';
export { inferUNetConfig } from '../model/infer-config.ts';
export { splitByCase, selectCases } from './split-by-case.ts';
export { asLocalTrainer } from './as-local-trainer.ts';
