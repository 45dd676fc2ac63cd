/**
 * FedBN (Li et al., ICLR 2021, Algorithm 1): average everything except batch-normalization parameters and
 * statistics, which stay local. The server keeps the global BN tensors unchanged; the fit config carries
 * `keepLocalBatchNorm: true` so the site trainer restores its own BN tensors before training.
 */
import { isBatchNormTensor } from '../../protocol/contracts/index.ts';
import type { FitConfig } from '../../protocol/index.ts';
import { FedAvg, type FedAvgOptions } from './fedavg.ts';

/** Default BN predicate: the tensor-name contract's batch-norm roles (`enc1.bn1.gamma`, `dec2.bn.mean`, `...norm...`). */
export const isBatchNormName: (name: string) => boolean = isBatchNormTensor;

export interface FedBNOptions extends Omit<FedAvgOptions, 'aggregates'> {
  isBatchNorm?: (name: string) => boolean;
}

export class FedBN extends FedAvg {
  override readonly name: string = 'fedbn';

  constructor(opts: FedBNOptions = {}) {
    const isBn = opts.isBatchNorm ?? isBatchNormName;
    super({ ...opts, aggregates: (name) => !isBn(name) });
  }

  protected override fitConfig(round: number): FitConfig {
    return { ...super.fitConfig(round), keepLocalBatchNorm: true };
  }
}
