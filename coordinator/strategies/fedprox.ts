/**
 * FedProx (Li et al., MLSys 2020): the server step is FedAvg; the difference is the local objective
 * F_k(w) + (mu/2) ||w - w_t||^2 (eq. 2), so the strategy only adds `proximalMu` to the fit config and the
 * site's trainer adds the proximal term.
 */
import type { FitConfig } from '../../protocol/index.ts';
import { FedAvg, type FedAvgOptions } from './fedavg.ts';

export interface FedProxOptions extends FedAvgOptions {
  proximalMu: number;
}

export class FedProx extends FedAvg {
  override readonly name: string = 'fedprox';
  private readonly mu: number;

  constructor(opts: FedProxOptions) {
    super(opts);
    if (!(opts.proximalMu >= 0)) throw new RangeError(`proximalMu must be >= 0, got ${opts.proximalMu}`);
    this.mu = opts.proximalMu;
  }

  protected override fitConfig(round: number): FitConfig {
    return { ...super.fitConfig(round), proximalMu: this.mu };
  }
}
