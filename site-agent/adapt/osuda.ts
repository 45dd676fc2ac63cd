/**
 * OSUDA — Liu, Xing, Yang, El Fakhri, Woo, MICCAI 2021 (arXiv 2106.12497), section 2; memory-consistent
 * self-training from Liu, Xing, El Fakhri, Woo, MedIA 83 (2023) 102641 (arXiv 2209.07910), section 3.3.
 * Per target batch t:
 * 1. low-order statistics: μ_t = (1 - η_t) μ_{t-1} + η_t μ_batch (same for σ²), from the source values, with the
 *    exponential momentum decay η_t = η_0 exp(-t/T) (MICCAI sec. 2.1). The network normalises with these running
 *    values during adaptation, so it starts as the source model and moves gradually to target statistics;
 * 2. high-order consistency L_HBS = Σ_l Σ_k (1 + α_lk)(|γ_S - γ_T| + |β_S - β_T|) with TransNorm transferability α
 *    (MICCAI sec. 2.2; the 2023 version also scales the divergence by the BN scaling factor |γ_S|);
 * 3. self-entropy L_SE = mean_pixels -Σ_c p_c log p_c (MICCAI sec. 2.3);
 * 4. memory-consistent self-training (MedIA 2023 sec. 3.3): a queue of the last M predictions of each target slice;
 *    a pixel gets a pseudo-label only where the current argmax agrees with every remembered one and max p > τ.
 * Only γ/β are optimised (convolutions stay the source's). The papers' exact constants are not public; the defaults
 * below are this implementation's choices, exposed as options.
 */
import * as tf from '@tensorflow/tfjs-core';
import { BN_EPSILON, type UNet } from '../model/index.ts';
import { Rng } from '../../protocol/common/index.ts';
import { BN_AFFINE_PARTS, batchNormTensorName } from '../../protocol/contracts/index.ts';
import { AdaptError } from './adapt-error.ts';
import type { AdaptProgress, AdaptReport } from './adapt-report.ts';
import { disposeStats, epochBatches, imageBatch, meanEntropy } from './batching.ts';
import { emdMomentum, transferabilityWeights } from './osuda-math.ts';
import { bnMeanVar, type SourceStats } from './source-stats.ts';
import { bnAffineVariables, checkPositive } from './tent.ts';
import type { UnlabeledSlices } from './unlabeled-slices.ts';
import { validateUnlabeled } from './unlabeled-slices.ts';

export interface OsudaOptions {
  /** Adam learning rate for γ/β. Default 1e-3. */
  readonly lr?: number;
  /** Passes over the target set. Default 3 (self-training needs at least 2: the memory fills in the first). */
  readonly epochs?: number;
  readonly batchSize?: number;
  readonly seed?: number;
  /** Initial running-statistics momentum η_0. Default 0.5. */
  readonly eta0?: number;
  /** Decay constant T of η_t = η_0 exp(-t/T), in adaptation steps. Default 20. */
  readonly decayT?: number;
  /** Floor of η_t so that late steps keep tracking the target. Default 0.01. */
  readonly etaMin?: number;
  /** Weight of L_HBS. Default 0.01: an L1 pull whose subgradient (weight·(1+α)) must stay below the entropy gradient for γ/β to move at all. */
  readonly hbsWeight?: number;
  /** Weight λ of the self-entropy. Default 1. */
  readonly entropyWeight?: number;
  /** Weight of the memory-consistent self-training cross-entropy. Default 1. */
  readonly selfTrainWeight?: number;
  /** Pseudo-label confidence τ. Default 0.9. */
  readonly pseudoLabelConfidence?: number;
  /** Remembered predictions per slice that must agree (queue length M). Default 1. */
  readonly memoryLength?: number;
  /** Scale the transferability divergence by |γ_S| (MedIA 2023). Default true. */
  readonly scaleTransferability?: boolean;
  readonly onProgress?: AdaptProgress;
}

/**
 * L_HBS for given current γ/β variables and frozen source values and per-layer weights (1 + α).
 * Exported for the test that it is exactly 0 at the source parameters.
 */
export function hbsLoss(
  layers: readonly string[],
  current: Map<string, tf.Tensor>,
  source: Map<string, tf.Tensor>,
  weights: Map<string, tf.Tensor1D>,
): tf.Scalar {
  return tf.tidy(() => {
    let total: tf.Tensor = tf.scalar(0);
    for (const l of layers) {
      const dg = tf.abs(tf.sub(current.get(batchNormTensorName(l, 'gamma'))!, source.get(batchNormTensorName(l, 'gamma'))!));
      const db = tf.abs(tf.sub(current.get(batchNormTensorName(l, 'beta'))!, source.get(batchNormTensorName(l, 'beta'))!));
      total = tf.add(total, tf.sum(tf.mul(weights.get(l)!, tf.add(dg, db))));
    }
    return total as tf.Scalar;
  });
}

export function adaptOsuda(unet: UNet, target: UnlabeledSlices, sourceStats: SourceStats | null, opts: OsudaOptions = {}): AdaptReport {
  validateUnlabeled(target);
  const o = {
    lr: opts.lr ?? 1e-3,
    epochs: opts.epochs ?? 3,
    batchSize: opts.batchSize ?? 8,
    eta0: opts.eta0 ?? 0.5,
    decayT: opts.decayT ?? 20,
    etaMin: opts.etaMin ?? 0.01,
    hbsWeight: opts.hbsWeight ?? 0.01,
    entropyWeight: opts.entropyWeight ?? 1,
    selfTrainWeight: opts.selfTrainWeight ?? 1,
    tau: opts.pseudoLabelConfidence ?? 0.9,
    memoryLength: opts.memoryLength ?? 1,
  };
  checkPositive('lr', o.lr);
  checkPositive('epochs', o.epochs, true);
  checkPositive('batchSize', o.batchSize, true);
  checkPositive('decayT', o.decayT);
  checkPositive('memoryLength', o.memoryLength, true);
  if (!(o.eta0 > 0 && o.eta0 <= 1)) throw new AdaptError('BAD_OPTION', `eta0 must be in (0, 1], got ${o.eta0}`);
  const notes: string[] = [];
  const rng = new Rng(opts.seed ?? 0);
  const layers = unet.bnLayers;
  const vars = bnAffineVariables(unet);
  // Frozen source γ/β (the high-order statistics L_HBS keeps the target close to).
  const sourceAffine = new Map<string, tf.Tensor>();
  for (const l of layers) for (const p of BN_AFFINE_PARTS) sourceAffine.set(batchNormTensorName(l, p), tf.clone(unet.trainable.get(batchNormTensorName(l, p))!));
  const currentAffine = new Map<string, tf.Tensor>([...sourceAffine.keys()].map((k) => [k, unet.trainable.get(k)!]));
  // Source low-order statistics: the pooled package when given, else the model's own running values.
  const srcBn = new Map<string, { mean: ArrayLike<number>; variance: ArrayLike<number> }>();
  if (sourceStats) for (const [l, mv] of bnMeanVar(sourceStats)) srcBn.set(l, mv);
  else notes.push('no source statistics package: transferability uses the model\'s running statistics as the source values');
  for (const l of layers) {
    if (!srcBn.has(l)) srcBn.set(l, { mean: unet.bnStats.get(batchNormTensorName(l, 'mean'))!.dataSync(), variance: unet.bnStats.get(batchNormTensorName(l, 'var'))!.dataSync() });
  }
  const gammaS = new Map(layers.map((l) => [l, sourceAffine.get(batchNormTensorName(l, 'gamma'))!.dataSync()]));
  const memory = new Map<number, Uint8Array[]>();
  const px = target.height * target.width;
  const optimizer = tf.train.adam(o.lr);
  const losses: number[] = [];
  let pseudoFraction = 0;
  const total = o.epochs * Math.ceil(target.n / o.batchSize);
  let t = 0;
  try {
    for (let e = 0; e < o.epochs; e++) {
      for (const idx of epochBatches(target.n, o.batchSize, rng)) {
        const x = imageBatch(target, idx);
        // (1) EMD update of the low-order statistics from this batch (measured with the current running values upstream).
        const r0 = unet.forward(x, { bn: 'running', collectStats: true });
        unet.updateRunningStats(r0.batchStats, emdMomentum(t, o.eta0, o.decayT, o.etaMin));
        disposeStats(r0.batchStats);
        r0.latent.dispose();
        // (4) memory-consistent pseudo-labels from the current prediction.
        const [pmT, prT] = tf.tidy(() => {
          const p = tf.softmax(r0.logits);
          return [tf.max(p, -1), tf.argMax(p, -1)];
        });
        r0.logits.dispose();
        const pm = pmT.dataSync();
        const pr = prT.dataSync();
        pmT.dispose();
        prT.dispose();
        const n = idx.length * px;
        const mask = new Float32Array(n);
        const pseudo = new Int32Array(n);
        let selected = 0;
        idx.forEach((s, i) => {
          const at = i * px;
          const cur = new Uint8Array(pr.subarray(at, at + px));
          const past = memory.get(s) ?? [];
          if (past.length >= o.memoryLength) {
            for (let q = 0; q < px; q++) {
              if (!(pm[at + q] > o.tau)) continue;
              let agree = true;
              for (let m = 0; m < past.length && agree; m++) agree = past[m][q] === cur[q];
              if (agree) {
                mask[at + q] = 1;
                pseudo[at + q] = cur[q];
                selected++;
              }
            }
          }
          memory.set(s, [...past, cur].slice(-o.memoryLength));
        });
        pseudoFraction = selected / n;
        // (2) transferability weights from the source vs the current (adapted) target statistics.
        const weights = new Map<string, tf.Tensor1D>();
        for (const l of layers) {
          const src = srcBn.get(l)!;
          const alpha = transferabilityWeights(
            src.mean,
            src.variance,
            unet.bnStats.get(batchNormTensorName(l, 'mean'))!.dataSync(),
            unet.bnStats.get(batchNormTensorName(l, 'var'))!.dataSync(),
            BN_EPSILON,
            opts.scaleTransferability === false ? undefined : gammaS.get(l),
          );
          weights.set(l, tf.tensor1d(Float32Array.from(alpha, (a) => 1 + a)));
        }
        const maskT = tf.tensor1d(mask);
        const pseudoT = tf.tensor1d(pseudo, 'int32');
        const cost = optimizer.minimize(
          () => {
            const logits = unet.forward(x, { bn: 'running', collectStats: false }).logits;
            let loss = tf.mul(meanEntropy(logits), o.entropyWeight);
            loss = tf.add(loss, tf.mul(hbsLoss(layers, currentAffine, sourceAffine, weights), o.hbsWeight));
            if (selected > 0 && o.selfTrainWeight > 0) {
              const logp = tf.reshape(tf.logSoftmax(logits), [n, -1]);
              const nll = tf.neg(tf.sum(tf.mul(tf.oneHot(pseudoT, unet.config.numClasses), logp), -1));
              const st = tf.div(tf.sum(tf.mul(nll, maskT)), selected);
              loss = tf.add(loss, tf.mul(st, o.selfTrainWeight));
            }
            return loss as tf.Scalar;
          },
          true,
          vars,
        );
        const loss = cost ? cost.dataSync()[0] : NaN;
        cost?.dispose();
        for (const w of weights.values()) w.dispose();
        maskT.dispose();
        pseudoT.dispose();
        x.dispose();
        losses.push(loss);
        t++;
        opts.onProgress?.(t, total, loss);
      }
    }
  } finally {
    optimizer.dispose();
    for (const s of sourceAffine.values()) s.dispose();
  }
  notes.push(`final pseudo-label fraction ${pseudoFraction.toFixed(3)}, final eta ${emdMomentum(t, o.eta0, o.decayT, o.etaMin).toFixed(4)}`);
  return { method: 'osuda', steps: t, losses, notes };
}
