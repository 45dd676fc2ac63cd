/**
 * GMM + SWD — Stan & Rostami, "Unsupervised model adaptation for source-free segmentation of medical images",
 * MedIA 95 (2024) 103179 (arXiv 2101.00522), section 3: the source latent distribution (features before the 1x1
 * classifier) is summarised by one full-covariance Gaussian per class (sec. 3.2); at the target the network is
 * trained so that its latent features match samples of that GMM in sliced Wasserstein distance, while a
 * cross-entropy term keeps the classifier correct on the GMM samples (sec. 3.3, eq. for the adaptation loss:
 * L = CE(h(Z), Y) + λ·SWD(f(X_T), Z), λ = 0.5 in the authors' code).
 * Departure from the authors' code: the per-class sample counts come from the model's PREDICTED target proportions
 * mixed with the source priors (`priorMix`), never from target ground truth (their code reads it: a label leak).
 * The BN statistics are first set to the target's (AdaBN) and then held fixed (`bnMode` 'running'), or each batch
 * normalises with its own moments and a final AdaBN pass stores the target statistics (`bnMode` 'batch').
 * Options beyond the paper, all off by default: adapt only some parameters (`trainablePrefixes`), several restarts
 * selected by label-free target SWD (`restarts`), and a self-training stage on class-balanced, optionally
 * memory-consistent pseudo-labels (`selfTrainEpochs`; CBST, Zou et al. ECCV 2018 sec. 4.2; OSUDA, Liu et al. MedIA 2023
 * sec. 3.3).
 */
import * as tf from '@tensorflow/tfjs-core';
import type { UNet } from '../model/index.ts';
import { Rng } from '../../protocol/common/index.ts';
import { adaptAdaBN } from './adabn.ts';
import { AdaptError } from './adapt-error.ts';
import type { AdaptProgress, AdaptReport } from './adapt-report.ts';
import { epochBatches, imageBatch } from './batching.ts';
import { gatherRows } from './gather-rows.ts';
import { agreeWithMemory, classBalancedPseudoLabels, type PseudoLabels } from './pseudo-labels.ts';
import { gaussianFromMoments, sampleGaussian, type Gaussian } from './gaussian.ts';
import { predictedProportions, priorDivergence, type RestartSelection } from './restart-selection.ts';
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
  /**
   * Parameter-name prefixes to adapt (e.g. ['enc1.'] for the first encoder block). Default: every trainable
   * parameter, as in the paper. Restricting adaptation to the shallow layers follows Karani et al., "Test-time
   * adaptable neural networks for robust medical image segmentation", MedIA 68 (2021) 101907, sec. 3: an acquisition
   * shift is an intensity-level change that the first layers can undo while the deeper (shape) layers stay the source's.
   */
  readonly trainablePrefixes?: readonly string[];
  /**
   * BN normalisation while adapting: 'running' (AdaBN statistics, then fixed) or 'batch' (each batch's own moments,
   * so normalisation follows the changing weights; a final AdaBN pass stores the target statistics). Default 'running'.
   */
  readonly bnMode?: 'running' | 'batch';
  /**
   * Independent adaptation runs from the federated model (different batch orders, projections and GMM draws); the
   * one whose final target-vs-GMM SWD is lowest is kept. The SWD objective is non-convex and a run can settle with
   * classes swapped; its own loss, measured label-free on the target, picks between runs. Default 1.
   */
  readonly restarts?: number;
  /**
   * How restarts are compared: 'swd' (lowest final target SWD) or 'prior' (lowest KL(source class priors ||
   * predicted target class proportions); restart-selection.ts). Default 'swd'.
   */
  readonly restartSelection?: RestartSelection;
  /**
   * Extra epochs after the alignment stage that add a class-balanced self-training term (CBST, Zou et al. ECCV 2018,
   * sec. 4.2; pseudo-labels recomputed at the start of each epoch) to the same loss. Default 0 (off).
   */
  readonly selfTrainEpochs?: number;
  /** Weight of the pseudo-label cross-entropy in the self-training epochs. Default 1. */
  readonly pseudoLabelWeight?: number;
  /** Fraction of each class's predicted pixels (the most confident ones) that get a pseudo-label. Default 0.5. */
  readonly pseudoLabelKeep?: number;
  /**
   * Memory consistency (Liu et al., MedIA 2023, sec. 3.3): from the second self-training epoch on, a pixel keeps its
   * pseudo-label only if the previous epoch's prediction agreed. Default false.
   */
  readonly pseudoLabelMemory?: boolean;
  /** Parameters trained in the self-training epochs (prefixes; `[""]` = all). Default: the same as `trainablePrefixes`. */
  readonly selfTrainPrefixes?: readonly string[];
  /** Adam learning rate of the self-training epochs. Default: `lr`. */
  readonly selfTrainLr?: number;
  readonly onProgress?: AdaptProgress;
}

/** The trainable variables whose names start with one of the prefixes (all of them when `prefixes` is undefined). */
export function selectTrainable(unet: UNet, prefixes: readonly string[] | undefined): tf.Variable[] {
  if (prefixes === undefined) return [...unet.trainable.values()];
  const out = [...unet.trainable.entries()].filter(([n]) => prefixes.some((p) => n.startsWith(p))).map(([, v]) => v);
  if (out.length === 0) {
    throw new AdaptError('BAD_OPTION', `trainablePrefixes [${prefixes.join(', ')}] match no parameter (names look like ${[...unet.trainable.keys()].slice(0, 3).join(', ')})`);
  }
  return out;
}

/** Per-class GMM samples for m rows, class counts from the mixed proportions (never target labels). */
function drawGmmSamples(gmm: SourceGmm, p: number[], m: number, allowed: boolean[], rng: Rng): { z: Float32Array; y: Int32Array } {
  const counts = apportion(p, m, allowed);
  const z = new Float32Array(m * gmm.dim);
  const y = new Int32Array(m);
  let row = 0;
  counts.forEach((cnt, c) => {
    if (cnt === 0) return;
    sampleGaussian(gmm.gaussians[c]!, gmm.dim, cnt, rng, z, row);
    y.fill(c, row, row + cnt);
    row += cnt;
  });
  return { z, y };
}

/**
 * The adaptation objective's alignment term measured on the whole target set in inference mode: mean over target
 * batches of SWD(latent, GMM samples) with fixed projections and samples (seeded by `seed`), so that different
 * restarts are compared on identical draws. Label-free: it is the paper's own loss (sec. 3.3), used for model
 * selection between restarts.
 */
export function targetSwd(unet: UNet, target: UnlabeledSlices, gmm: SourceGmm, priorMix: number, opts: { batchSize: number; samplesPerStep: number; numProjections: number; seed: number }): number {
  const rng = new Rng(opts.seed);
  const allowed = gmm.gaussians.map((g) => g !== null);
  const k = unet.config.numClasses;
  const px = target.height * target.width;
  let sum = 0;
  let batches = 0;
  for (const idx of epochBatches(target.n, opts.batchSize, null)) {
    const npx = idx.length * px;
    const m = Math.min(opts.samplesPerStep, npx);
    const pick = new Int32Array(m);
    for (let i = 0; i < m; i++) pick[i] = rng.int(npx);
    const v = tf.tidy(() => {
      const r = unet.forward(imageBatch(target, idx), { bn: 'running', collectStats: false });
      const predicted = new Float64Array(k);
      for (const c of tf.argMax(r.logits, -1).dataSync()) predicted[c] += 1 / npx;
      const p = Array.from(predicted, (q, c) => priorMix * gmm.priors[c] + (1 - priorMix) * q);
      const { z } = drawGmmSamples(gmm, p, m, allowed, rng);
      const feats = gatherRows(tf.reshape(r.latent, [-1, gmm.dim]) as tf.Tensor2D, pick);
      return slicedWasserstein(feats, tf.tensor2d(z, [m, gmm.dim]), opts.numProjections, rng);
    });
    sum += v.dataSync()[0];
    v.dispose();
    batches++;
  }
  return sum / batches;
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
  const restarts = opts.restarts ?? 1;
  const samplesPerStep = opts.samplesPerStep ?? 512;
  const selfTrainEpochs = opts.selfTrainEpochs ?? 0;
  const pseudoLabelWeight = opts.pseudoLabelWeight ?? 1;
  const pseudoLabelKeep = opts.pseudoLabelKeep ?? 0.5;
  if (!(Number.isInteger(selfTrainEpochs) && selfTrainEpochs >= 0)) throw new AdaptError('BAD_OPTION', `selfTrainEpochs must be a non-negative integer, got ${selfTrainEpochs}`);
  if (!(pseudoLabelWeight >= 0)) throw new AdaptError('BAD_OPTION', `pseudoLabelWeight must be >= 0, got ${pseudoLabelWeight}`);
  if (!(pseudoLabelKeep > 0 && pseudoLabelKeep <= 1)) throw new AdaptError('BAD_OPTION', `pseudoLabelKeep must be in (0, 1], got ${pseudoLabelKeep}`);
  checkPositive('lr', lr);
  checkPositive('epochs', epochs, true);
  checkPositive('batchSize', batchSize, true);
  checkPositive('numProjections', numProjections, true);
  checkPositive('restarts', restarts, true);
  checkPositive('samplesPerStep', samplesPerStep, true);
  if (!(priorMix >= 0 && priorMix <= 1)) throw new AdaptError('BAD_OPTION', `priorMix must be in [0, 1], got ${priorMix}`);
  const restartSelection = opts.restartSelection ?? 'swd';
  if (restartSelection !== 'swd' && restartSelection !== 'prior') throw new AdaptError('BAD_OPTION', `restartSelection must be 'swd' or 'prior', got ${String(restartSelection)}`);
  const bnMode = opts.bnMode ?? 'running';
  if (bnMode !== 'running' && bnMode !== 'batch') throw new AdaptError('BAD_OPTION', `bnMode must be 'running' or 'batch', got ${String(bnMode)}`);
  const gmm = fitSourceGmm(sourceStats, opts);
  const allowed = gmm.gaussians.map((g) => g !== null);
  const k = unet.config.numClasses;
  const dim = gmm.dim;
  const px = target.height * target.width;
  const seed = opts.seed ?? 0;
  const rootRng = new Rng(seed);
  const vars = selectTrainable(unet, opts.trainablePrefixes);
  const selfVars = opts.selfTrainPrefixes === undefined ? vars : selectTrainable(unet, opts.selfTrainPrefixes);
  const selfTrainLr = opts.selfTrainLr ?? lr;
  checkPositive('selfTrainLr', selfTrainLr);
  const initial = unet.getWeights();
  const losses: number[] = [];
  const total = restarts * (epochs + selfTrainEpochs) * Math.ceil(target.n / batchSize);
  let lastSelected = NaN;
  const evalOpts = { batchSize, samplesPerStep, numProjections: Math.max(numProjections, 200), seed: seed ^ 0x5eed };
  let best: { swd: number; weights: ReturnType<UNet['getWeights']>; restart: number } | null = null;
  const scores: string[] = [];
  for (let attempt = 0; attempt < restarts; attempt++) {
    // Each restart starts from the federated model with its own draw of batches, projections and GMM samples.
    const rng = rootRng.fork();
    if (attempt > 0) unet.setWeights(initial);
    adaptAdaBN(unet, target, { batchSize });
    const alignOptimizer = tf.train.adam(lr);
    const selfOptimizer = tf.train.adam(selfTrainLr);
    try {
      let previousLabels: Int32Array | null = null;
      for (let e = 0; e < epochs + selfTrainEpochs; e++) {
        let pl: PseudoLabels | null = null;
        if (e >= epochs) {
          if (bnMode === 'batch') adaptAdaBN(unet, target, { batchSize });
          const fresh = classBalancedPseudoLabels(unet, target, pseudoLabelKeep, batchSize);
          pl = opts.pseudoLabelMemory === true && previousLabels !== null ? agreeWithMemory(fresh, previousLabels) : fresh;
          previousLabels = fresh.labels;
          lastSelected = pl.selectedFraction;
        }
        for (const idx of epochBatches(target.n, batchSize, rng)) {
          const x = imageBatch(target, idx);
          const npx = idx.length * px;
          let plLabels: tf.Tensor1D | null = null;
          let plMask: tf.Tensor1D | null = null;
          let plCount = 0;
          if (pl !== null && pseudoLabelWeight > 0) {
            const lab = new Int32Array(npx);
            const msk = new Float32Array(npx);
            idx.forEach((sl, i) => {
              lab.set(pl.labels.subarray(sl * px, (sl + 1) * px), i * px);
              msk.set(pl.mask.subarray(sl * px, (sl + 1) * px), i * px);
            });
            for (const v of msk) plCount += v;
            plLabels = tf.tensor1d(lab, 'int32');
            plMask = tf.tensor1d(msk);
          }
          const m = Math.min(samplesPerStep, npx);
          const pick = new Int32Array(m);
          for (let i = 0; i < m; i++) pick[i] = rng.int(npx);
          const optimizer = pl === null ? alignOptimizer : selfOptimizer;
          const cost = optimizer.minimize(
            () => {
              const r = unet.forward(x, { bn: bnMode, collectStats: false });
              // Predicted target class proportions (no gradient, no labels).
              const predicted = new Float64Array(k);
              const am = tf.argMax(r.logits, -1);
              for (const c of am.dataSync()) predicted[c] += 1 / npx;
              am.dispose();
              const p = Array.from(predicted, (v, c) => priorMix * gmm.priors[c] + (1 - priorMix) * v);
              const { z, y } = drawGmmSamples(gmm, p, m, allowed, rng);
              const zT = tf.tensor2d(z, [m, dim]);
              const feats = gatherRows(tf.reshape(r.latent, [-1, dim]) as tf.Tensor2D, pick);
              // Stan & Rostami 2024, sec. 3.3: L = CE(h(Z), Y) + λ·SWD(f(X_T), Z).
              const swd = slicedWasserstein(feats, zT, numProjections, rng);
              const logp = tf.logSoftmax(unet.classify(zT));
              const ce = tf.neg(tf.mean(tf.sum(tf.mul(tf.oneHot(tf.tensor1d(y, 'int32'), k), logp), -1)));
              let loss = tf.add(tf.mul(swd, swdWeight), tf.mul(ce, ceWeight));
              if (plLabels !== null && plMask !== null && plCount > 0) {
                const lp = tf.reshape(tf.logSoftmax(r.logits), [npx, k]);
                const nll = tf.neg(tf.sum(tf.mul(tf.oneHot(plLabels, k), lp), -1));
                loss = tf.add(loss, tf.mul(tf.div(tf.sum(tf.mul(nll, plMask)), plCount), pseudoLabelWeight));
              }
              return loss as tf.Scalar;
            },
            true,
            pl === null ? vars : selfVars,
          );
          plLabels?.dispose();
          plMask?.dispose();
          const loss = cost ? cost.dataSync()[0] : NaN;
          cost?.dispose();
          x.dispose();
          losses.push(loss);
          opts.onProgress?.(losses.length, total, loss);
        }
      }
    } finally {
      alignOptimizer.dispose();
      selfOptimizer.dispose();
    }
    if (bnMode === 'batch') adaptAdaBN(unet, target, { batchSize });
    if (restarts > 1) {
      const swd = restartSelection === 'swd' ? targetSwd(unet, target, gmm, priorMix, evalOpts) : priorDivergence(gmm.priors, predictedProportions(unet, target, batchSize));
      scores.push(swd.toFixed(4));
      if (best === null || swd < best.swd) best = { swd, weights: unet.getWeights(), restart: attempt };
    }
  }
  const notes = [...gmm.notes, `GMM classes from: ${gmm.sources.join(', ')}`];
  if (selfTrainEpochs > 0) notes.push(`self-training: last pseudo-labelled fraction ${lastSelected.toFixed(3)}`);
  if (best !== null) {
    unet.setWeights(best.weights);
    const what = restartSelection === 'swd' ? 'target SWD' : 'KL(source priors || predicted target proportions)';
    notes.push(`${restarts} restarts, ${what} [${scores.join(', ')}]; kept restart ${best.restart}`);
  }
  return { method: 'gmm-swd', steps: losses.length, losses, notes };
}
