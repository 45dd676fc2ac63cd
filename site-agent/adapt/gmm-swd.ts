/**
 * GMM + SWD — Stan & Rostami, "Unsupervised model adaptation for source-free segmentation of medical images",
 * MedIA 95 (2024) 103179 (arXiv 2101.00522), section 3: the source latent distribution (features before the 1x1
 * classifier) is summarised by one full-covariance Gaussian per class (sec. 3.2); at the target the network is
 * trained so that its latent features match samples of that GMM in sliced Wasserstein distance, while a
 * cross-entropy term keeps the classifier correct on the GMM samples (sec. 3.3, eq. for the adaptation loss:
 * L = CE(h(Z), Y) + λ·SWD(f(X_T), Z), λ = 0.5 in the authors' code).
 * Departure from the authors' code: the per-class sample counts come from the model's PREDICTED target proportions
 * mixed with the source priors (`priorMix`), never from target ground truth (their code reads it: a label leak).
 * The BN statistics are first set to the target's (AdaBN) and then held fixed, so training and inference normalise
 * identically.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { UNet } from '../model/index.ts';
import { Rng } from '../util/rng.ts';
import { adaptAdaBN } from './adabn.ts';
import { AdaptError } from './adapt-error.ts';
import type { AdaptProgress, AdaptReport } from './adapt-report.ts';
import { epochBatches, imageBatch } from './batching.ts';
import { gatherRows } from './gather-rows.ts';
import { gaussianFromMoments, sampleGaussian, type Gaussian } from './gaussian.ts';
import { slicedWasserstein } from './sliced-wasserstein.ts';
import { checkStatsMatchModel, classPriors, type SourceStats } from './source-stats.ts';
import { checkPositive } from './tent.ts';
import type { UnlabeledSlices } from './unlabeled-slices.ts';
import { validateUnlabeled } from './unlabeled-slices.ts';

export interface SourceGmm {
  /** One entry per class; null when the class had too few source pixels to form a Gaussian. */
  readonly gaussians: (Gaussian | null)[];
  readonly priors: Float64Array;
  readonly dim: number;
  /** Which moments each class used: 'confident', 'labelled' (fallback) or 'none'. */
  readonly sources: ('confident' | 'labelled' | 'none')[];
  readonly notes: string[];
}

export interface GmmFitOptions {
  /** Minimum confident pixels for a class to use them; below it the class falls back to all its labelled pixels. Default max(4·dim, 50). */
  readonly minPixels?: number;
  /** Ridge added to covariance diagonals. Default 1e-4. */
  readonly ridge?: number;
}

/** Forms the per-class Gaussians from a (pooled) source statistics package, saying where it had to fall back. */
export function fitSourceGmm(stats: SourceStats, opts: GmmFitOptions = {}): SourceGmm {
  const dim = stats.latentDim;
  const minPixels = opts.minPixels ?? Math.max(4 * dim, 50);
  const notes: string[] = [];
  const sources: SourceGmm['sources'] = [];
  const gaussians = stats.classes.map((c, k) => {
    if (c.confident.count >= minPixels) {
      sources.push('confident');
      return gaussianFromMoments(c.confident, dim, opts.ridge);
    }
    if (c.labelled.count >= 2) {
      sources.push('labelled');
      notes.push(
        `class ${k}: only ${c.confident.count} confident correct pixels (< ${minPixels}); Gaussian fitted on all ${c.labelled.count} labelled pixels`,
      );
      return gaussianFromMoments(c.labelled, dim, opts.ridge);
    }
    sources.push('none');
    notes.push(`class ${k}: no labelled source pixels; the class is not sampled`);
    return null;
  });
  if (gaussians.every((g) => g === null)) throw new AdaptError('GMM_UNAVAILABLE', 'no class has source pixels to fit a Gaussian');
  return { gaussians, priors: classPriors(stats), dim, sources, notes };
}

/** Integer counts summing to m proportional to p (largest remainder), zero where `allowed` is false. */
export function apportion(p: ArrayLike<number>, m: number, allowed: readonly boolean[]): number[] {
  const w = Array.from({ length: p.length }, (_, k) => (allowed[k] ? Math.max(0, p[k]) : 0));
  let s = w.reduce((a, b) => a + b, 0);
  if (s <= 0) {
    for (let k = 0; k < w.length; k++) w[k] = allowed[k] ? 1 : 0;
    s = w.reduce((a, b) => a + b, 0);
  }
  const exact = w.map((v) => (v / s) * m);
  const counts = exact.map(Math.floor);
  let rest = m - counts.reduce((a, b) => a + b, 0);
  const order = exact.map((v, k) => [v - Math.floor(v), k] as const).sort((a, b) => b[0] - a[0]);
  for (let i = 0; rest > 0; i = (i + 1) % order.length) {
    if (w[order[i][1]] > 0) {
      counts[order[i][1]]++;
      rest--;
    }
  }
  return counts;
}

export interface GmmSwdOptions extends GmmFitOptions {
  /** Adam learning rate (all trainable parameters). Default 1e-3 (the authors used 5e-5 over far more steps). */
  readonly lr?: number;
  /** Passes over the target set. Default 3. */
  readonly epochs?: number;
  readonly batchSize?: number;
  readonly seed?: number;
  /** Random unit directions per step. Default 100 (authors' code). */
  readonly numProjections?: number;
  /** λ on the SWD term. Default 0.5 (authors' code). */
  readonly swdWeight?: number;
  /** Weight of CE on GMM samples. Default 1. */
  readonly ceWeight?: number;
  /** Target latent pixels (and GMM samples) per step. Default 512. */
  readonly samplesPerStep?: number;
  /** Class proportions = priorMix · source priors + (1 - priorMix) · predicted target proportions. Default 0.5. */
  readonly priorMix?: number;
  readonly onProgress?: AdaptProgress;
}

export function adaptGmmSwd(unet: UNet, target: UnlabeledSlices, sourceStats: SourceStats, opts: GmmSwdOptions = {}): AdaptReport {
  validateUnlabeled(target);
  checkStatsMatchModel(sourceStats, unet);
  const lr = opts.lr ?? 1e-3;
  const epochs = opts.epochs ?? 3;
  const batchSize = opts.batchSize ?? 8;
  const numProjections = opts.numProjections ?? 100;
  const swdWeight = opts.swdWeight ?? 0.5;
  const ceWeight = opts.ceWeight ?? 1;
  const priorMix = opts.priorMix ?? 0.5;
  checkPositive('lr', lr);
  checkPositive('epochs', epochs, true);
  checkPositive('batchSize', batchSize, true);
  checkPositive('numProjections', numProjections, true);
  if (!(priorMix >= 0 && priorMix <= 1)) throw new AdaptError('BAD_OPTION', `priorMix must be in [0, 1], got ${priorMix}`);
  const gmm = fitSourceGmm(sourceStats, opts);
  const allowed = gmm.gaussians.map((g) => g !== null);
  const k = unet.config.numClasses;
  const dim = gmm.dim;
  const px = target.height * target.width;
  const rng = new Rng(opts.seed ?? 0);
  adaptAdaBN(unet, target, { batchSize });
  const vars = [...unet.trainable.values()];
  const optimizer = tf.train.adam(lr);
  const losses: number[] = [];
  const total = epochs * Math.ceil(target.n / batchSize);
  try {
    for (let e = 0; e < epochs; e++) {
      for (const idx of epochBatches(target.n, batchSize, rng)) {
        const x = imageBatch(target, idx);
        const npx = idx.length * px;
        const m = Math.min(opts.samplesPerStep ?? 512, npx);
        const pick = new Int32Array(m);
        for (let i = 0; i < m; i++) pick[i] = rng.int(npx);
        let counts: number[] = [];
        const cost = optimizer.minimize(
          () => {
            const r = unet.forward(x, { bn: 'running', collectStats: false });
            // Predicted target class proportions (no gradient, no labels).
            const predicted = new Float64Array(k);
            const am = tf.argMax(r.logits, -1);
            for (const c of am.dataSync()) predicted[c] += 1 / npx;
            am.dispose();
            const p = Array.from(predicted, (v, c) => priorMix * gmm.priors[c] + (1 - priorMix) * v);
            counts = apportion(p, m, allowed);
            const z = new Float32Array(m * dim);
            const y = new Int32Array(m);
            let row = 0;
            counts.forEach((cnt, c) => {
              if (cnt === 0) return;
              sampleGaussian(gmm.gaussians[c]!, dim, cnt, rng, z, row);
              y.fill(c, row, row + cnt);
              row += cnt;
            });
            const zT = tf.tensor2d(z, [m, dim]);
            const feats = gatherRows(tf.reshape(r.latent, [-1, dim]) as tf.Tensor2D, pick);
            const swd = slicedWasserstein(feats, zT, numProjections, rng);
            const logp = tf.logSoftmax(unet.classify(zT));
            const ce = tf.neg(tf.mean(tf.sum(tf.mul(tf.oneHot(tf.tensor1d(y, 'int32'), k), logp), -1)));
            return tf.add(tf.mul(swd, swdWeight), tf.mul(ce, ceWeight)) as tf.Scalar;
          },
          true,
          vars,
        );
        const loss = cost ? cost.dataSync()[0] : NaN;
        cost?.dispose();
        x.dispose();
        losses.push(loss);
        opts.onProgress?.(losses.length, total, loss);
      }
    }
  } finally {
    optimizer.dispose();
  }
  return {
    method: 'gmm-swd',
    steps: losses.length,
    losses,
    notes: [...gmm.notes, `GMM classes from: ${gmm.sources.join(', ')}`],
  };
}
