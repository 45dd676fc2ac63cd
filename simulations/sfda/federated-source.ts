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
import { concatSites } from './benchmark-site.ts';

/**
 * Which rounds train on augmented copies (with `augment` set): `every` round (the default); only rounds >= `from`
 * (`from-round`: the model first fits the plain source, then is made robust); every 2nd round (`alternate`: even
 * rounds augmented); or `mixed`: every round on the plain slices AND a fresh augmented copy (twice the steps).
 */
export type AugmentSchedule = { readonly kind: 'every' } | { readonly kind: 'from-round'; readonly from: number } | { readonly kind: 'alternate' } | { readonly kind: 'mixed' };

/** What round `round` (1-based) trains on under `schedule`. */
export function augmentInRound(schedule: AugmentSchedule | undefined, round: number): 'plain' | 'augmented' | 'plain+augmented' {
  const s = schedule ?? { kind: 'every' };
  switch (s.kind) {
    case 'every':
      return 'augmented';
    case 'from-round':
      return round >= s.from ? 'augmented' : 'plain';
    case 'alternate':
      return round % 2 === 0 ? 'augmented' : 'plain';
    case 'mixed':
      return 'plain+augmented';
  }
}

/** A round's training data: the plain slices, a fresh augmented copy (seeded by `seed`), or both. */
export function roundData(data: SliceDataset, augment: IntensityAugmentOptions | undefined, schedule: AugmentSchedule | undefined, round: number, seed: number): SliceDataset {
  if (augment === undefined) return data;
  const what = augmentInRound(schedule, round);
  if (what === 'plain') return data;
  const aug = augmentDataset(data, augment, seed);
  return what === 'augmented' ? aug : concatSites([data, aug]);
}

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
  /** Which rounds use `augment` (default every round). */
  readonly augmentSchedule?: AugmentSchedule;
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
      const data = roundData(sites[s], cfg.augment, cfg.augmentSchedule, r, cfg.seed * 7919 + (r - 1) * 31 + s);
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
