export { UNetTrainer, type UNetTrainerOptions, type FitRequest, type FitOutcome, type EvaluateOutcome } from './unet-trainer.ts';
