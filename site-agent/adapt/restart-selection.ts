/**
 * Label-free choice between several adaptation runs (restarts) of one method. Uses the unlabelled target images and
 * the pooled source statistics only.
 *
 * Why a class-prior criterion: a label-free alignment objective (SWD between target latents and the source GMM) can
 * settle with classes permuted, e.g. background features mapped onto a foreground Gaussian; the marginal SWD of such a
 * solution can be as low as the correct one's. The anatomy a site images does not change with the scanner, so the
 * fraction of pixels in each class at the target should be close to the pooled source class priors; a swap moves
 * large amounts of mass between classes and shows up as a large divergence. This is the class-ratio prior of
 * label-free segmentation adaptation (Bateson et al., "Source-free domain adaptation for image segmentation", MedIA 82
 * (2022) 102617: entropy plus a KL term between the predicted class ratio and an anatomical prior), used here for model
 * selection between runs only, with the pooled source class frequencies as the prior.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { UNet } from '../model/index.ts';
import { AdaptError } from './adapt-error.ts';
import { epochBatches, imageBatch } from './batching.ts';
import type { UnlabeledSlices } from './unlabeled-slices.ts';

/** How the restarts of `gmm-swd` are compared: final target SWD to the GMM, or class-prior divergence. */
export type RestartSelection = 'swd' | 'prior';
export const RESTART_SELECTIONS: readonly RestartSelection[] = ['swd', 'prior'];

/** Fraction of target pixels predicted as each class (inference mode, running BN statistics). */
export function predictedProportions(unet: UNet, target: UnlabeledSlices, batchSize = 8): Float64Array {
  const k = unet.config.numClasses;
  const counts = new Float64Array(k);
  for (const idx of epochBatches(target.n, batchSize, null)) {
    const am = tf.tidy(() => tf.argMax(unet.forward(imageBatch(target, idx), { bn: 'running', collectStats: false }).logits, -1));
    for (const c of am.dataSync()) counts[c]++;
    am.dispose();
  }
  const total = counts.reduce((a, b) => a + b, 0);
  return counts.map((c) => c / Math.max(1, total));
}

/**
 * KL(prior || predicted) = Σ_c π_c log(π_c / q'_c), with q'_c = (q_c + eps) / (1 + K·eps) (still a distribution, so
 * the divergence stays >= 0) so that a class never predicted costs a large but finite amount.
 */
export function priorDivergence(prior: ArrayLike<number>, predicted: ArrayLike<number>, eps = 1e-4): number {
  if (prior.length !== predicted.length || prior.length === 0) {
    throw new AdaptError('BAD_SHAPE', `priorDivergence needs two equally long non-empty vectors, got ${prior.length} and ${predicted.length}`);
  }
  let kl = 0;
  const norm = 1 + prior.length * eps;
  for (let c = 0; c < prior.length; c++) {
    const p = prior[c];
    if (!(p >= 0) || !(predicted[c] >= 0)) throw new AdaptError('BAD_OPTION', `class proportions must be >= 0 (class ${c}: ${p}, ${predicted[c]})`);
    if (p > 0) kl += p * Math.log(p / ((predicted[c] + eps) / norm));
  }
  return kl;
}
