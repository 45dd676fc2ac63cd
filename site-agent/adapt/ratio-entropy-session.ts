/**
 * Class-ratio-prior entropy minimisation (ratio-entropy.ts: Bateson et al., MedIA 82 (2022) 102617, eq. 3,
 *   L = (1/|Ω|) Σ_i Σ_c -p_ic log p_ic + λ · KL(τ̂ || τ)) stepped one epoch at a time, so that several target sites can
 * interleave it with secure sums (federated multi-target adaptation, joint-target-site.ts). Between epochs a site can
 * report its predicted class mass Σ_i p_ic over its target pixels: summed over sites it is the class-ratio estimate of
 * the whole federation. BN as in `adaptRatioEntropy`: batch statistics while training (running values untouched),
 * target statistics (AdaBN) before every prediction pass and at the end.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { UNet } from '../model/index.ts';
import { Rng } from '../../protocol/common/index.ts';
import { adaptAdaBN } from './adabn.ts';
import { AdaptError } from './adapt-error.ts';
import { epochBatches, imageBatch, meanEntropy } from './batching.ts';
import { ratioDivergence } from './ratio-entropy.ts';
import { checkPositive } from './tent.ts';
import type { UnlabeledSlices } from './unlabeled-slices.ts';
import { validateUnlabeled } from './unlabeled-slices.ts';

export interface RatioEntropySessionOptions {
  /** Adam learning rate (all parameters). Default 1e-3 (as `adaptRatioEntropy`). */
  readonly lr?: number;
  /** λ on KL(τ̂ || τ). Default 1. */
  readonly priorWeight?: number;
  readonly batchSize?: number;
  readonly seed?: number;
}

/** `prior` normalised to sum 1 (validated). */
export function normalisedPrior(prior: ArrayLike<number>, numClasses: number): Float32Array {
  const p = Array.from(prior);
  const s = p.reduce((a, b) => a + b, 0);
  if (p.length !== numClasses || p.some((v) => !(v >= 0)) || !(s > 0)) throw new AdaptError('BAD_OPTION', `class prior must hold ${numClasses} non-negative values with a positive sum, got ${JSON.stringify(p)}`);
  return Float32Array.from(p, (v) => v / s);
}

export class RatioEntropySession {
  private readonly optimizer: tf.Optimizer;
  private readonly rng: Rng;
  readonly losses: number[] = [];

  constructor(
    readonly unet: UNet,
    readonly target: UnlabeledSlices,
    readonly opts: RatioEntropySessionOptions,
  ) {
    validateUnlabeled(target);
    checkPositive('lr', opts.lr ?? 1e-3);
    if (!((opts.priorWeight ?? 1) >= 0)) throw new AdaptError('BAD_OPTION', `priorWeight must be >= 0, got ${opts.priorWeight}`);
    this.rng = new Rng(opts.seed ?? 0);
    this.optimizer = tf.train.adam(opts.lr ?? 1e-3);
    adaptAdaBN(unet, target, { batchSize: opts.batchSize });
  }

  /** Σ over target pixels of the predicted class probabilities (the model with target BN statistics). */
  classMass(): Float64Array {
    adaptAdaBN(this.unet, this.target, { batchSize: this.opts.batchSize });
    const k = this.unet.config.numClasses;
    const mass = new Float64Array(k);
    for (const idx of epochBatches(this.target.n, this.opts.batchSize ?? 8, null)) {
      const s = tf.tidy(() => tf.sum(tf.reshape(tf.softmax(this.unet.forward(imageBatch(this.target, idx), { bn: 'running', collectStats: false }).logits), [-1, k]), 0));
      s.dataSync().forEach((v, c) => (mass[c] += v));
      s.dispose();
    }
    return mass;
  }

  /** One pass over the target minimising entropy + λ KL(τ̂ || prior), all parameters (Bateson et al. eq. 3). */
  trainEpoch(prior: Float32Array): void {
    const p = tf.tensor1d(prior);
    const vars = [...this.unet.trainable.values()];
    try {
      for (const idx of epochBatches(this.target.n, this.opts.batchSize ?? 8, this.rng)) {
        const x = imageBatch(this.target, idx);
        const cost = this.optimizer.minimize(
          () => {
            const logits = this.unet.forward(x, { bn: 'batch', collectStats: false }).logits;
            return tf.add(meanEntropy(logits), tf.mul(ratioDivergence(logits, p), this.opts.priorWeight ?? 1)) as tf.Scalar;
          },
          true,
          vars,
        );
        this.losses.push(cost ? cost.dataSync()[0] : NaN);
        cost?.dispose();
        x.dispose();
      }
    } finally {
      p.dispose();
    }
  }

  /** The adapted model: target BN statistics (AdaBN); frees the optimizer. */
  finish(): void {
    adaptAdaBN(this.unet, this.target, { batchSize: this.opts.batchSize });
    this.optimizer.dispose();
  }
}
