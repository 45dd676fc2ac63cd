/**
 * Label-free scores of a model on the target images (through its input curve, when it has one), for the do-no-harm
 * safeguard and for the suite's diagnostics:
 * - `entropy`: mean prediction entropy (TENT's premise: lower entropy goes with lower error, Wang et al. ICLR 2021);
 * - `priorKl`: KL(source class priors || predicted class proportions): the anatomy's class proportions do not change
 *   with the scanner, so a collapse or a class swap shows as a large divergence (Bateson et al., MedIA 2022);
 * - `consistency`: mean over foreground classes of the Dice overlap between the predictions on the image and on a
 *   mildly perturbed copy (gamma, contrast, noise): a model that has found the target's structure is stable under
 *   small acquisition perturbations (the augmentation-consistency premise of mean-teacher methods);
 * - `latent` (with a source package): per predicted class, how typical the features before the classifier are of that
 *   class's source Gaussian (latent-typicality.ts; Lee et al. NeurIPS 2018), computed in the same forward pass.
 * None reads a label.
 */
import * as tf from '@tensorflow/tfjs-core';
import { Rng } from '../../protocol/common/index.ts';
import { BN_EPSILON, type UNet } from '../model/index.ts';
import { epochBatches, imageBatch, meanEntropy, predictLabels } from './batching.ts';
import { applyCurve, type IntensityCurve } from './intensity-curve.ts';
import { priorDivergence } from './restart-selection.ts';
import { bnMeanVar, classPriors, type SourceStats } from './source-stats.ts';
import { sourceClassGaussians, TypicalityAccumulator, type LatentTypicality } from './latent-typicality.ts';
import { strongAugment } from './strong-augment.ts';
import type { UnlabeledSlices } from './unlabeled-slices.ts';

export interface LabelFreeScores {
  readonly entropy: number;
  readonly priorKl: number;
  readonly consistency: number;
  /**
   * Per BN layer (forward order): channel-mean KL( N(target moments of the layer's input, this model, through the curve)
   * || N(source moments from the statistics package) ). Absent without source statistics or BN layers.
   */
  readonly bnKl?: number[];
  /** Predicted class proportions over the target pixels. */
  readonly proportions?: number[];
  /** The source class priors (from the statistics package), when known. */
  readonly priors?: number[];
  /**
   * Latent-feature typicality per predicted class (latent-typicality.ts): mean squared Mahalanobis distance / d of the
   * features under the source Gaussian of the predicted class, and the fraction beyond the chi-square 99% quantile.
   * Absent without source statistics.
   */
  readonly latent?: LatentTypicality;
}

/** Mean foreground overlap 2|A∩B| / (|A|+|B|) between two label maps (classes absent from both are skipped). */
export function labelAgreement(a: Uint8Array, b: Uint8Array, numClasses: number): number {
  const inter = new Float64Array(numClasses);
  const na = new Float64Array(numClasses);
  const nb = new Float64Array(numClasses);
  for (let i = 0; i < a.length; i++) {
    na[a[i]]++;
    nb[b[i]]++;
    if (a[i] === b[i]) inter[a[i]]++;
  }
  let sum = 0;
  let n = 0;
  for (let c = 1; c < numClasses; c++) {
    if (na[c] + nb[c] === 0) continue;
    sum += (2 * inter[c]) / (na[c] + nb[c]);
    n++;
  }
  return n === 0 ? 1 : sum / n;
}

/** The scores of `unet` (inference mode, its own BN statistics) on `target` seen through `curve`. */
export function labelFreeScores(unet: UNet, target: UnlabeledSlices, stats: SourceStats | null, curve?: IntensityCurve, seed = 0): LabelFreeScores {
  const seen = curve ? applyCurve(curve, target) : target;
  const k = unet.config.numClasses;
  let entropy = 0;
  const layers = stats ? unet.bnLayers : [];
  const m1 = layers.map(() => null as Float64Array | null);
  const m2 = layers.map(() => null as Float64Array | null);
  const typical = stats ? new TypicalityAccumulator(sourceClassGaussians(stats), stats.latentDim) : null;
  for (const idx of epochBatches(seen.n, 8, null)) {
    const moments: { mean: Float32Array; variance: Float32Array }[] = [];
    const e = tf.tidy(() => {
      const r = unet.forward(imageBatch(seen, idx), { bn: 'running', collectStats: layers.length > 0 });
      for (const l of layers) {
        const b = r.batchStats.get(l)!;
        moments.push({ mean: b.mean.dataSync() as Float32Array, variance: b.variance.dataSync() as Float32Array });
      }
      typical?.add(r.latent.dataSync(), tf.argMax(r.logits, -1).dataSync());
      return meanEntropy(r.logits);
    });
    entropy += (e.dataSync()[0] * idx.length) / seen.n;
    e.dispose();
    moments.forEach((m, j) => {
      const a = (m1[j] ??= new Float64Array(m.mean.length));
      const b = (m2[j] ??= new Float64Array(m.mean.length));
      for (let c = 0; c < m.mean.length; c++) {
        a[c] += (m.mean[c] * idx.length) / seen.n;
        b[c] += ((m.variance[c] + m.mean[c] * m.mean[c]) * idx.length) / seen.n;
      }
    });
  }
  const bnKl = stats && layers.length > 0 ? layers.map((l, j) => gaussianKl(m1[j]!, m2[j]!, bnMeanVar(stats).get(l))) : undefined;
  const pred = predictLabels(unet, seen);
  const counts = new Float64Array(k);
  for (const c of pred) counts[c]++;
  const proportions = counts.map((c) => c / pred.length);
  const priors = stats ? classPriors(stats) : null;
  const priorKl = priors ? priorDivergence(priors, proportions) : NaN;
  // The perturbation is applied to the raw target (before the curve), as a scanner's small variations would be.
  const rng = new Rng(seed ^ 0x5afe);
  const perturbed = { ...target, images: strongAugment(target.images, target.n, target.height, target.width, rng, { prob: 1, gammaMax: 1.25, contrast: 0.1, noise: 0.05, saltPepper: 0, erase: false }) };
  const predPerturbed = predictLabels(unet, curve ? applyCurve(curve, perturbed) : perturbed);
  return {
    entropy,
    priorKl,
    consistency: labelAgreement(pred, predPerturbed, k),
    ...(bnKl ? { bnKl } : {}),
    proportions: Array.from(proportions),
    ...(priors ? { priors: Array.from(priors) } : {}),
    ...(typical ? { latent: typical.result() } : {}),
  };
}

/** Channel-mean KL(N(μt, σt²) || N(μs, σs²)) from the target's first and second raw moments (NaN without source moments). */
function gaussianKl(m1: Float64Array, m2: Float64Array, src: { mean: Float64Array; variance: Float64Array } | undefined): number {
  if (!src) return NaN;
  let sum = 0;
  for (let c = 0; c < m1.length; c++) {
    const vt = Math.max(0, m2[c] - m1[c] * m1[c]) + BN_EPSILON;
    const vs = src.variance[c] + BN_EPSILON;
    sum += 0.5 * (Math.log(vs / vt) + (vt + (m1[c] - src.mean[c]) ** 2) / vs - 1);
  }
  return sum / m1.length;
}
