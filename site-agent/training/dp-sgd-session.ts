/**
 * A site's DP-SGD over a whole federated run: the plan (clip, sigma, Poisson rate), the randomness, and the site's
 * own privacy ledger, which composes every local step of every round (RDP, protocol/privacy/ledger.ts). Before each
 * fit it refuses (PrivacyError 'budget-exceeded') a round that would take the site past its `maxEpsilon`.
 */
import { DP_SGD_METRIC, PrivacyError, PrivacyLedger, type DpSgdPlan, type NoiseSource } from '../../protocol/privacy/index.ts';
import type { SliceDataset } from '../data/index.ts';
import type { UNet } from '../model/index.ts';
import { trainLocalDpSgd, type DpSgdTrainConfig, type DpSgdTrainResult } from './dp-sgd.ts';

const LABEL = 'dp-sgd';

export class DpSgdSession {
  readonly ledger = new PrivacyLedger();

  constructor(
    readonly plan: DpSgdPlan,
    private readonly noise: NoiseSource,
  ) {}

  /** `epochs` local epochs of DP-SGD; the steps are recorded whether or not training finishes. */
  async train(unet: UNet, data: SliceDataset, cfg: Omit<DpSgdTrainConfig, 'plan' | 'noise'>): Promise<DpSgdTrainResult & { metrics: Record<string, number> }> {
    this.refuseOverBudget(cfg.epochs * this.plan.stepsPerEpoch);
    let steps = 0;
    let result: DpSgdTrainResult;
    try {
      result = await trainLocalDpSgd(unet, data, { ...cfg, plan: this.plan, noise: this.noise, onStep: (i, l) => ((steps = i + 1), cfg.onStep?.(i, l)) });
    } catch (e) {
      // Every noised step released a gradient into the model: it counts even if a later step failed.
      if (steps > 0) this.record(steps);
      throw e;
    }
    this.record(result.dpSteps);
    return { ...result, metrics: { ...this.accounting(), [DP_SGD_METRIC.clippedFraction]: result.clippedFraction } };
  }

  private record(steps: number): void {
    this.ledger.record({ mechanism: 'sampled-gaussian', label: LABEL, samplingRate: this.plan.samplingRate, noiseMultiplier: this.plan.noiseMultiplier, steps });
  }

  /** The site's accounting so far, as fit metrics (DP_SGD_METRIC names). */
  accounting(): Record<string, number> {
    const steps = this.ledger.events.reduce((s, e) => s + e.steps, 0);
    return {
      [DP_SGD_METRIC.epsilon]: this.ledger.spent(this.plan.delta).epsilon,
      [DP_SGD_METRIC.delta]: this.plan.delta,
      [DP_SGD_METRIC.steps]: steps,
      [DP_SGD_METRIC.noiseMultiplier]: this.plan.noiseMultiplier,
      [DP_SGD_METRIC.samplingRate]: this.plan.samplingRate,
      [DP_SGD_METRIC.clip]: this.plan.clip,
    };
  }

  private refuseOverBudget(steps: number): void {
    if (this.plan.maxEpsilon === null) return;
    const next = this.ledger.clone();
    next.record({ mechanism: 'sampled-gaussian', label: LABEL, samplingRate: this.plan.samplingRate, noiseMultiplier: this.plan.noiseMultiplier, steps });
    const eps = next.spent(this.plan.delta).epsilon;
    if (eps > this.plan.maxEpsilon) {
      throw new PrivacyError('budget-exceeded', `this round's ${steps} DP-SGD steps would take the site to epsilon ${eps.toFixed(3)} > its budget ${this.plan.maxEpsilon}`);
    }
  }
}
