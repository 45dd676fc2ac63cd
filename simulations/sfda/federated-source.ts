/**
 * The SFDA benchmarks' federated source model, trained in one process but aggregated by the product's own strategy
 * (`coordinator/strategies`, FedAvg by default: McMahan et al., AISTATS 2017, Alg. 1): each round the strategy picks
 * the sites and their fit config (local epochs, learning rate), every picked site trains the global model locally,
 * and `strategy.aggregateFit` forms the next global model (float64 accumulation, names and shapes validated), exactly
 * as the coordinator does with the replies of real sites. Only the transport (sockets, encryption) is left out.
 */
import { createStrategy, type FitResult, type StrategySpec } from '../../coordinator/strategies/index.ts';
import type { SliceDataset } from '../../site-agent/data/index.ts';
import type { UNet } from '../../site-agent/model/index.ts';
import { trainLocal } from '../../site-agent/training/index.ts';
import { augmentDataset, type IntensityAugmentOptions } from '../../site-agent/training/index.ts';

export interface FederatedSourceConfig {
  readonly rounds: number;
  readonly localEpochs: number;
  readonly batchSize: number;
  readonly lr: number;
  readonly seed: number;
  /** The strategy (default FedAvg over all sites); its `localEpochs`/`lr` default to the fields above. */
  readonly strategy?: StrategySpec;
  /** Source-side intensity augmentation (a fresh augmented copy of every site per round); off when absent. */
  readonly augment?: IntensityAugmentOptions;
  readonly onRound?: (round: number, meanLoss: number) => void;
}

export class FederatedSourceError extends Error {
  readonly code = 'ROUND_NOT_AGGREGATED' as const;
  constructor(message: string) {
    super(message);
    this.name = 'FederatedSourceError';
  }
}

/**
 * Trains `unet` in place by federated rounds over `sites` (it ends holding the final global model).
 * @example
 * await trainFederatedSource(unet, [siteA, siteB], { rounds: 8, localEpochs: 3, batchSize: 8, lr: 0.01, seed: 1 });
 */
export async function trainFederatedSource(unet: UNet, sites: readonly SliceDataset[], cfg: FederatedSourceConfig): Promise<void> {
  const strategy = createStrategy({ name: 'fedavg', localEpochs: cfg.localEpochs, lr: cfg.lr, seed: cfg.seed, ...(cfg.strategy ?? {}) });
  const infos = sites.map((_, s) => ({ siteId: `src${s}` }));
  let global = unet.getWeights();
  for (let r = 1; r <= cfg.rounds; r++) {
    const results: FitResult[] = [];
    let lossSum = 0;
    for (const ins of strategy.configureFit(r, infos, global)) {
      const s = infos.findIndex((i) => i.siteId === ins.siteId);
      unet.setWeights(global);
      const data = cfg.augment ? augmentDataset(sites[s], cfg.augment, cfg.seed * 7919 + (r - 1) * 31 + s) : sites[s];
      const res = await trainLocal(unet, data, {
        epochs: Math.max(1, ins.config.localEpochs),
        batchSize: cfg.batchSize,
        optimizer: 'adam',
        lr: ins.config.lr,
        loss: 'ce+dice',
        seed: cfg.seed * 1000 + (r - 1) * 17 + s,
      });
      // As a real site replies (site-agent/client/unet-trainer.ts): its weights and its number of training slices.
      results.push({ siteId: ins.siteId, weights: unet.getWeights(), numExamples: sites[s].n, metrics: { trainLoss: res.meanLoss } });
      lossSum += res.meanLoss;
    }
    const next = strategy.aggregateFit(r, results, [], global);
    if (next === null) throw new FederatedSourceError(`round ${r}: strategy ${strategy.name} kept the model (${results.length} replies)`);
    global = next.weights;
    cfg.onRound?.(r, lossSum / Math.max(1, results.length));
  }
  unet.setWeights(global);
}
