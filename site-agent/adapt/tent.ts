/**
 * TENT — Wang, Shelhamer, Liu, Olshausen, Darrell, "Tent: Fully Test-Time Adaptation by Entropy Minimization",
 * ICLR 2021, section 3 (and `DequanWang/tent`): normalise with the current batch's statistics, update only the BN
 * affine parameters (γ, β) by one gradient step per batch on the mean prediction entropy (eq. 2).
 * TENT keeps using batch statistics at test time; fedsfda's saved model predicts with running statistics, so a
 * final AdaBN pass stores the target statistics under the adapted γ/β (stated in the report's notes).
 */
import * as tf from '@tensorflow/tfjs-core';
import { startPlanTraining } from '../engine/index.ts';
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

/**
 * The normalisation layers' γ/β variables, in forward order: batch norm, or group norm in the GroupNorm U-Net (the
 * DP-SGD model). TENT adapts exactly these (Wang et al., ICLR 2021, sec. 3: "modulation" parameters of the
 * normalisation layers), whichever normalisation the model has.
 */
export function bnAffineVariables(unet: UNet): tf.Variable[] {
  const out: tf.Variable[] = [];
  for (const layer of [...unet.bnLayers, ...unet.gnLayers]) {
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
  const losses: number[] = [];
  const total = epochs * Math.ceil(target.n / batchSize);
  // The compiled plan when the engine runs them (fedsfda-native): the same step (tf.train.adam(lr) takes the
  // backend's epsilon, 1e-7), entropy and BN-affine gradients in one native run.
  const plan = startPlanTraining(unet, {
    optimizer: 'adam', lr, adamEps: 1e-7, loss: 'entropy', trainable: unet.bnLayers.flatMap((l) => [`${l}.gamma`, `${l}.beta`]),
  });
  const optimizer = plan === null ? tf.train.adam(lr) : null;
  try {
    for (let e = 0; e < epochs; e++) {
      for (const idx of epochBatches(target.n, batchSize, rng)) {
        const x = imageBatch(target, idx);
        let loss: number;
        if (plan !== null) {
          loss = plan.step(x.dataSync() as Float32Array, null, idx.length, target.height, target.width);
        } else {
          const cost = optimizer!.minimize(() => meanEntropy(unet.forward(x, { bn: 'batch', collectStats: false }).logits), true, vars);
          loss = cost ? cost.dataSync()[0] : NaN;
          cost?.dispose();
        }
        x.dispose();
        losses.push(loss);
        opts.onProgress?.(losses.length, total, loss);
      }
    }
  } finally {
    plan?.finish();
    optimizer?.dispose();
  }
  // Group norm normalises each slice by its own statistics: there are no running statistics to re-estimate.
  const batchNorm = unet.bnLayers.length > 0;
  if (batchNorm) adaptAdaBN(unet, target, { batchSize });
  return {
    method: 'tent',
    steps: losses.length,
    losses,
    notes: [
      batchNorm
        ? 'running BN statistics recomputed on the target after the TENT steps (AdaBN pass), so inference uses target statistics'
        : 'group-norm model: TENT adapted the group-norm scales and shifts (no running statistics to re-estimate)',
    ],
  };
}
