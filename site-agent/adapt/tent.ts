/**
 * TENT — Wang, Shelhamer, Liu, Olshausen, Darrell, "Tent: Fully Test-Time Adaptation by Entropy Minimization",
 * ICLR 2021, section 3 (and `DequanWang/tent`): normalise with the current batch's statistics, update only the BN
 * affine parameters (γ, β) by one gradient step per batch on the mean prediction entropy (eq. 2).
 * TENT keeps using batch statistics at test time; fedsfda's saved model predicts with running statistics, so a
 * final AdaBN pass stores the target statistics under the adapted γ/β (stated in the report's notes).
 */
import * as tf from '@tensorflow/tfjs-core';
import type { UNet } from '../model/index.ts';
import { Rng } from '../../protocol/common/index.ts';
import { BN_AFFINE_PARTS, batchNormTensorName } from '../../protocol/contracts/index.ts';
import { adaptAdaBN } from './adabn.ts';
import { AdaptError } from './adapt-error.ts';
import type { AdaptProgress, AdaptReport } from './adapt-report.ts';
import { epochBatches, imageBatch, meanEntropy } from './batching.ts';
import type { UnlabeledSlices } from './unlabeled-slices.ts';
import { validateUnlabeled } from './unlabeled-slices.ts';

export interface TentOptions {
  /** Adam learning rate (TENT used Adam 1e-3 on CIFAR). Default 1e-3. */
  readonly lr?: number;
  /** Passes over the target set. Default 1 (TENT adapts online, one step per batch). */
  readonly epochs?: number;
  readonly batchSize?: number;
  readonly seed?: number;
  readonly onProgress?: AdaptProgress;
}

/** BN γ/β variables of the model, in forward order. */
export function bnAffineVariables(unet: UNet): tf.Variable[] {
  const out: tf.Variable[] = [];
  for (const layer of unet.bnLayers) {
    for (const p of BN_AFFINE_PARTS) {
      const v = unet.trainable.get(batchNormTensorName(layer, p));
      if (v === undefined) throw new AdaptError('STATS_MISMATCH', `model has no '${batchNormTensorName(layer, p)}'`);
      out.push(v);
    }
  }
  return out;
}

export function checkPositive(name: string, v: number, integer = false): void {
  if (!(v > 0) || !Number.isFinite(v) || (integer && !Number.isInteger(v))) {
    throw new AdaptError('BAD_OPTION', `${name} must be a positive ${integer ? 'integer' : 'number'}, got ${v}`);
  }
}

export function adaptTent(unet: UNet, target: UnlabeledSlices, opts: TentOptions = {}): AdaptReport {
  validateUnlabeled(target);
  const lr = opts.lr ?? 1e-3;
  const epochs = opts.epochs ?? 1;
  const batchSize = opts.batchSize ?? 8;
  checkPositive('lr', lr);
  checkPositive('epochs', epochs, true);
  checkPositive('batchSize', batchSize, true);
  const rng = new Rng(opts.seed ?? 0);
  const vars = bnAffineVariables(unet);
  const optimizer = tf.train.adam(lr);
  const losses: number[] = [];
  const total = epochs * Math.ceil(target.n / batchSize);
  try {
    for (let e = 0; e < epochs; e++) {
      for (const idx of epochBatches(target.n, batchSize, rng)) {
        const x = imageBatch(target, idx);
        const cost = optimizer.minimize(
          () => meanEntropy(unet.forward(x, { bn: 'batch', collectStats: false }).logits),
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
  adaptAdaBN(unet, target, { batchSize });
  return {
    method: 'tent',
    steps: losses.length,
    losses,
    notes: ['running BN statistics recomputed on the target after the TENT steps (AdaBN pass), so inference uses target statistics'],
  };
}
