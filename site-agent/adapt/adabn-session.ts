/**
 * AdaBN (adabn.ts: Li, Wang, Shi, Liu, Hou, ICLR-W 2017, arXiv 1603.04779, sec. 3.1, Alg. 1) as a joint site's local
 * method (joint-target-site.ts, `method: 'adabn'`): the target's BN statistics and no gradient step. For a hospital
 * with a single unlabelled case the gradient methods can do harm (on the real-anatomy multi-target scenario,
 * ratio-entropy rounds on one 8-slice case left "alone" below the unadapted model); with this method what the sites
 * gain together is the pooled target BN moments only (`adapt.share.bnMoments`, joint-bn-moments.ts).
 */
import type { UNet } from '../model/index.ts';
import { adaptAdaBN } from './adabn.ts';
import type { UnlabeledSlices } from './unlabeled-slices.ts';
import { validateUnlabeled } from './unlabeled-slices.ts';

export class AdaBnSession {
  constructor(
    readonly unet: UNet,
    readonly target: UnlabeledSlices,
    readonly batchSize = 8,
  ) {
    validateUnlabeled(target);
    adaptAdaBN(unet, target, { batchSize });
  }

  /** The adapted model: target BN statistics (AdaBN), recomputed in case the weights were replaced since. */
  finish(): void {
    adaptAdaBN(this.unet, this.target, { batchSize: this.batchSize });
  }
}
