/**
 * AdaBN (adabn.ts: Li, Wang, Shi, Liu, Hou, ICLR-W 2017, arXiv 1603.04779, sec. 3.1, Alg. 1) as a joint site's local
 * method (joint-target-site.ts, `method: 'adabn'`): the target's BN statistics and no gradient step. For a hospital
 * with a single unlabelled case the gradient methods can do harm (on the real-anatomy multi-target scenario,
 * ratio-entropy rounds on one 8-slice case left "alone" below the unadapted model); with this method what the sites
 * gain together is the pooled target BN moments only (`adapt.share.bnMoments`, joint-bn-moments.ts).
 * With `sourceWeight` α_s > 0 the statistics are α-BN's calibration (You, Li, Zhao, "Test-time batch statistics
 * calibration for covariate shift", arXiv 2110.04065, 2021: μ = α μ_s + (1 - α) μ_t, likewise σ²), here the moments of
 * the mixture α_s · source + (1 - α_s) · target (`mixBnMomentSums`): one 8-slice case's statistics are noisy, and the
 * source's keep part of the network's discriminative structure.
 */
import type { UNet } from '../model/index.ts';
import { adaptAdaBN } from './adabn.ts';
import { AdaptError } from './adapt-error.ts';
import { mixBnMomentSums, runningBnMoments, setBnFromMomentSums, targetBnMomentSums, type BnMomentSums } from './joint-bn-moments.ts';
import type { UnlabeledSlices } from './unlabeled-slices.ts';
import { validateUnlabeled } from './unlabeled-slices.ts';

export class AdaBnSession {
  /** The model's statistics before AdaBN (the source's), kept when `sourceWeight` > 0. */
  private readonly source: BnMomentSums | null;

  constructor(
    readonly unet: UNet,
    readonly target: UnlabeledSlices,
    readonly batchSize = 8,
    readonly sourceWeight = 0,
  ) {
    validateUnlabeled(target);
    if (!(sourceWeight >= 0 && sourceWeight < 1)) throw new AdaptError('BAD_OPTION', `sourceBnWeight must be in [0, 1), got ${sourceWeight}`);
    this.source = sourceWeight > 0 ? runningBnMoments(unet) : null;
    this.finish();
  }

  /** Target moments as this method uses them: mixed with the source's when `sourceWeight` > 0, else as they are. */
  calibrate(target: BnMomentSums): BnMomentSums {
    return this.source ? mixBnMomentSums(this.source, target, this.sourceWeight) : target;
  }

  /** The adapted model: target BN statistics (AdaBN; α-BN with the source's when `sourceWeight` > 0). */
  finish(): void {
    if (this.source === null) adaptAdaBN(this.unet, this.target, { batchSize: this.batchSize });
    else setBnFromMomentSums(this.unet, this.calibrate(targetBnMomentSums(this.unet, this.target, this.batchSize)));
  }
}
