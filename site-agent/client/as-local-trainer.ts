/** Adapts the U-Net trainer to the site client's LocalTrainer contract (the wire's FitConfig). */
import type { LocalTrainer } from './local-trainer.ts';
import type { UNetTrainer } from './unet-trainer.ts';

export function asLocalTrainer(trainer: UNetTrainer): LocalTrainer {
  return {
    fit: (global, config) =>
      trainer.fit(global, {
        round: config.round,
        localEpochs: config.localEpochs,
        lr: config.lr,
        ...(config.proximalMu !== undefined ? { proximalMu: config.proximalMu } : {}),
        ...(config.keepLocalBatchNorm === true ? { keepLocalBatchNorm: true } : {}),
      }),
    evaluate: (global) => trainer.evaluate(global),
    statistics: (global, request) => trainer.statistics(global, request),
  };
}
