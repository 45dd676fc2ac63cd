/**
 * Entropy minimisation with a class-ratio prior — Bateson, Kervadec, Dolz, Lombaert, Ben Ayed, "Source-relaxed domain
 * adaptation for image segmentation", MICCAI 2020, and "Source-free domain adaptation for image segmentation", MedIA 82
 * (2022) 102617, eq. 3 (code `mathilde-b/SFDA`, losses.py `EntKLProp`):
 *   L = (1/|Ω|) Σ_i Σ_c -p_ic log p_ic  +  λ · KL(τ̂ || τ),   τ̂_c = (1/|Ω|) Σ_i p_ic,
 * i.e. TENT's entropy plus a term that keeps the predicted class ratio τ̂ of a batch close to an anatomical prior τ;
 * without it entropy minimisation drifts to the trivial low-entropy solution of predicting the dominant class.
 * The paper estimates τ per image with an auxiliary regressor trained on the source; here τ is the pooled source class
 * frequencies of the statistics package (a dataset-level prior, so it is applied to the ratio of a whole batch of
 * slices), or a pooled target estimate passed in `classPrior` (federated multi-target adaptation). Trained parameters:
 * all (as in the paper) or BN affine only (`params: 'bn'`); BN uses batch statistics while adapting and a final AdaBN
 * pass stores the target's.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { UNet } from '../model/index.ts';
import { Rng } from '../../protocol/common/index.ts';
import { adaptAdaBN } from './adabn.ts';
import { AdaptError } from './adapt-error.ts';
import type { AdaptProgress, AdaptReport } from './adapt-report.ts';
import { epochBatches, imageBatch, meanEntropy } from './batching.ts';
import { classPriors, type SourceStats } from './source-stats.ts';
import { bnAffineVariables, checkPositive } from './tent.ts';
import type { UnlabeledSlices } from './unlabeled-slices.ts';
import { validateUnlabeled } from './unlabeled-slices.ts';

export interface RatioEntropyOptions {
  /** Adam learning rate. Default 1e-3. */
  readonly lr?: number;
  /** Passes over the target. Default 4. */
  readonly epochs?: number;
  /** λ on KL(τ̂ || τ). Default 1. */
  readonly priorWeight?: number;
  /** 'all' parameters (default, as the paper) or 'bn' (γ/β only, as TENT). */
  readonly params?: 'all' | 'bn';
  /** The class-ratio prior τ; default: the source class frequencies from the statistics package. */
  readonly classPrior?: readonly number[];
  readonly batchSize?: number;
  readonly seed?: number;
  readonly onProgress?: AdaptProgress;
}

/** KL(τ̂ || τ) between the batch's mean softmax and the prior (Bateson et al. 2022, eq. 3). */
export function ratioDivergence(logits: tf.Tensor, prior: tf.Tensor1D): tf.Scalar {
  return tf.tidy(() => {
    const k = logits.shape[logits.rank - 1];
    const tau = tf.mean(tf.reshape(tf.softmax(logits), [-1, k]), 0);
    return tf.sum(tf.mul(tau, tf.sub(tf.log(tf.add(tau, 1e-10)), tf.log(tf.add(prior, 1e-10))))) as tf.Scalar;
  });
}

function resolvePrior(unet: UNet, stats: SourceStats | null, given: readonly number[] | undefined): Float32Array {
  const k = unet.config.numClasses;
  const p = given ?? (stats ? Array.from(classPriors(stats)) : undefined);
  if (p === undefined) throw new AdaptError('SOURCE_STATS_REQUIRED', 'ratio-entropy needs a class prior: the source statistics package or classPrior');
  if (p.length !== k || p.some((v) => !(v >= 0)) || !(p.reduce((a, b) => a + b, 0) > 0)) {
    throw new AdaptError('BAD_OPTION', `classPrior must hold ${k} non-negative values with a positive sum, got ${JSON.stringify(p)}`);
  }
  const s = p.reduce((a, b) => a + b, 0);
  return Float32Array.from(p, (v) => v / s);
}

export function adaptRatioEntropy(unet: UNet, target: UnlabeledSlices, stats: SourceStats | null, opts: RatioEntropyOptions = {}): AdaptReport {
  validateUnlabeled(target);
  const lr = opts.lr ?? 1e-3;
  const epochs = opts.epochs ?? 4;
  const batchSize = opts.batchSize ?? 8;
  const priorWeight = opts.priorWeight ?? 1;
  checkPositive('lr', lr);
  checkPositive('epochs', epochs, true);
  checkPositive('batchSize', batchSize, true);
  if (!(priorWeight >= 0)) throw new AdaptError('BAD_OPTION', `priorWeight must be >= 0, got ${priorWeight}`);
  const params = opts.params ?? 'all';
  if (params !== 'all' && params !== 'bn') throw new AdaptError('BAD_OPTION', `params must be 'all' or 'bn', got ${String(params)}`);
  const priorArr = resolvePrior(unet, stats, opts.classPrior);
  const prior = tf.tensor1d(priorArr);
  const vars = params === 'bn' ? bnAffineVariables(unet) : [...unet.trainable.values()];
  const rng = new Rng(opts.seed ?? 0);
  const optimizer = tf.train.adam(lr);
  const losses: number[] = [];
  const total = epochs * Math.ceil(target.n / batchSize);
  adaptAdaBN(unet, target, { batchSize });
  try {
    for (let e = 0; e < epochs; e++) {
      for (const idx of epochBatches(target.n, batchSize, rng)) {
        const x = imageBatch(target, idx);
        const cost = optimizer.minimize(
          () => {
            const logits = unet.forward(x, { bn: 'batch', collectStats: false }).logits;
            return tf.add(meanEntropy(logits), tf.mul(ratioDivergence(logits, prior), priorWeight)) as tf.Scalar;
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
    prior.dispose();
  }
  adaptAdaBN(unet, target, { batchSize });
  return {
    method: 'ratio-entropy',
    steps: losses.length,
    losses,
    notes: [`class-ratio prior [${Array.from(priorArr, (v) => v.toFixed(3)).join(', ')}] (${opts.classPrior ? 'given' : 'source class frequencies'}), ${params} parameters`],
  };
}
