/**
 * In-process FedAvg for the benchmark (McMahan et al., AISTATS 2017, Alg. 1): each round every source site trains
 * the global model locally and the new global model is the example-weighted mean of the site models — all
 * parameters, BN running statistics included (plain FedAvg, not FedBN).
 */
import type { WeightSet } from '../../protocol/named-tensor.ts';
import type { SliceDataset } from '../../site-agent/data/slice-dataset.ts';
import type { UNet } from '../../site-agent/model/index.ts';
import { trainLocal } from '../../site-agent/train/index.ts';
import { augmentDataset, type IntensityAugmentOptions } from './intensity-augment.ts';

export interface FedAvgConfig {
  readonly rounds: number;
  readonly localEpochs: number;
  readonly batchSize: number;
  readonly lr: number;
  readonly seed: number;
  /** Source-side intensity augmentation (a fresh augmented copy of every site per round); off when absent. */
  readonly augment?: IntensityAugmentOptions;
  readonly onRound?: (round: number, meanLoss: number) => void;
}

/** Example-weighted mean of weight sets with identical names and shapes. */
export function weightedAverage(sets: readonly WeightSet[], weights: readonly number[]): WeightSet {
  const total = weights.reduce((a, b) => a + b, 0);
  return sets[0].map((t, k) => {
    const data = new Float32Array(t.data.length);
    sets.forEach((ws, s) => {
      const f = weights[s] / total;
      const src = ws[k].data;
      for (let i = 0; i < data.length; i++) data[i] += f * src[i];
    });
    return { name: t.name, shape: [...t.shape], data };
  });
}

/** Runs FedAvg on `unet` in place (it ends holding the final global model). */
export async function runFedAvg(unet: UNet, sites: readonly SliceDataset[], cfg: FedAvgConfig): Promise<void> {
  let global = unet.getWeights();
  for (let r = 0; r < cfg.rounds; r++) {
    const replies: WeightSet[] = [];
    const examples: number[] = [];
    let lossSum = 0;
    for (let s = 0; s < sites.length; s++) {
      unet.setWeights(global);
      const data = cfg.augment ? augmentDataset(sites[s], cfg.augment, cfg.seed * 7919 + r * 31 + s) : sites[s];
      const res = await trainLocal(unet, data, {
        epochs: cfg.localEpochs,
        batchSize: cfg.batchSize,
        optimizer: 'adam',
        lr: cfg.lr,
        loss: 'ce+dice',
        seed: cfg.seed * 1000 + r * 17 + s,
      });
      replies.push(unet.getWeights());
      examples.push(res.examples);
      lossSum += res.meanLoss;
    }
    global = weightedAverage(replies, examples);
    cfg.onRound?.(r + 1, lossSum / sites.length);
  }
  unet.setWeights(global);
}
