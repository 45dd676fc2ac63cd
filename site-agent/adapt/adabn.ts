/**
 * AdaBN — Li, Wang, Shi, Liu, Hou, "Revisiting Batch Normalization For Practical Domain Adaptation", ICLR-W 2017
 * (arXiv 1603.04779), section 3.1 (Alg. 1): replace every BN layer's statistics by those of the target domain.
 * Implemented as PyTorch's cumulative moving average (momentum=None) in training mode: each batch is normalised with
 * its own moments (so layer l's statistics are measured on target features normalised by target statistics at
 * layers < l), and the running values become the example-weighted average of the batch moments. No gradient.
 */
import { planAdaBN, plansEnabled } from '../engine/index.ts';
import type { UNet } from '../model/index.ts';
import type { AdaptReport } from './adapt-report.ts';
import { disposeStats, epochBatches, imageBatch } from './batching.ts';
import type { UnlabeledSlices } from './unlabeled-slices.ts';
import { validateUnlabeled } from './unlabeled-slices.ts';

export interface AdaBnOptions {
  readonly batchSize?: number;
}


/** Recomputes all BN running statistics over the target set in place. */
export function adaptAdaBN(unet: UNet, target: UnlabeledSlices, opts: AdaBnOptions = {}): AdaptReport {
  validateUnlabeled(target);
  const batchSize = opts.batchSize ?? 8;
  if (plansEnabled(unet)) {
    // The same passes on a compiled plan (fedsfda-native): batch-BN forward, running update in place.
    return { method: 'adabn', steps: planAdaBN(unet, target.images, target.n, target.height, target.width, batchSize), losses: [], notes: [] };
  }
  let seen = 0;
  let steps = 0;
  for (const idx of epochBatches(target.n, batchSize, null)) {
    const x = imageBatch(target, idx);
    const r = unet.forward(x, { bn: 'batch' });
    // Cumulative average: the first batch replaces the source values outright (momentum 1).
    unet.updateRunningStats(r.batchStats, idx.length / (seen + idx.length));
    seen += idx.length;
    steps++;
    disposeStats(r.batchStats);
    r.logits.dispose();
    r.latent.dispose();
    x.dispose();
  }
  return { method: 'adabn', steps, losses: [], notes: [] };
}
