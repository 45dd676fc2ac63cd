import * as tf from '@tensorflow/tfjs-core';
import { TrainError } from './train-error.ts';

/**
 * Losses over logits [..., K] (class axis last). `labels` is either class indices with the logits' shape minus the
 * class axis (int32 or float holding integers), or per-class targets (one-hot or soft) with the logits' full shape.
 * All return a scalar averaged over pixels (and over the batch), so the value does not depend on the batch size.
 */
function targets(logits: tf.Tensor, labels: tf.Tensor, numClasses: number, fn: string): tf.Tensor2D {
  const k = logits.shape[logits.rank - 1];
  if (k !== numClasses) throw new TrainError('INVALID_INPUT', `${fn}: logits have ${k} classes, expected ${numClasses}`);
  if (labels.rank === logits.rank - 1 && tf.util.arraysEqual(labels.shape, logits.shape.slice(0, -1))) {
    const idx = labels.dtype === 'int32' ? labels : tf.cast(labels, 'int32');
    // int32 one-hot then cast: tfjs-backend-wasm 4.22's OneHot ignores a float32 dtype and writes int32 bit patterns
    // into the float buffer (1 reads as 1.4e-45), which silently zeroes the loss on that backend.
    return tf.cast(tf.oneHot(tf.reshape(idx, [-1]) as tf.Tensor1D, k), 'float32') as tf.Tensor2D;
  }
  if (tf.util.arraysEqual(labels.shape, logits.shape)) {
    return tf.reshape(labels.dtype === 'float32' ? labels : tf.cast(labels, 'float32'), [-1, k]);
  }
  throw new TrainError(
    'INVALID_INPUT',
    `${fn}: labels [${labels.shape.join(', ')}] fit neither class indices nor per-class targets for logits [${logits.shape.join(', ')}]`,
  );
}

function numClassesOf(logits: tf.Tensor, fn: string): number {
  if (logits.rank < 1) throw new TrainError('INVALID_INPUT', `${fn}: logits must have a class axis`);
  return logits.shape[logits.rank - 1];
}

/** Mean over pixels of -sum_c y_c log softmax(z)_c (log-softmax for numerical stability). */
export function crossEntropyLoss(logits: tf.Tensor, labels: tf.Tensor): tf.Scalar {
  return tf.tidy(() => {
    const k = numClassesOf(logits, 'crossEntropyLoss');
    const y = targets(logits, labels, k, 'crossEntropyLoss');
    const logp = tf.logSoftmax(tf.reshape(logits, [-1, k]) as tf.Tensor2D);
    return tf.neg(tf.mean(tf.sum(tf.mul(y, logp), -1))) as tf.Scalar;
  });
}

/** Smoothing added to numerator and denominator of each class's Dice (MONAI's smooth_nr = smooth_dr = 1e-5). */
export const DICE_SMOOTH = 1e-5;

/**
 * Soft Dice loss (Milletari et al., V-Net, 3DV 2016, eq. 1, with the squares dropped as in MONAI's DiceLoss default):
 *   dice_c = (2 * sum_i p_ic y_ic + s) / (sum_i p_ic + sum_i y_ic + s),  loss = 1 - mean_{c >= 1} dice_c,
 * pooled over every pixel of the batch ("batch Dice"), background class 0 excluded. Because s sits in both
 * numerator and denominator, a class absent from both prediction and labels scores dice ~ 1 (no penalty).
 */
export function softDiceLoss(logits: tf.Tensor, labels: tf.Tensor, numClasses: number, smooth = DICE_SMOOTH): tf.Scalar {
  if (numClasses < 2) throw new TrainError('INVALID_INPUT', `softDiceLoss: need at least 2 classes, got ${numClasses}`);
  return tf.tidy(() => {
    const y = targets(logits, labels, numClasses, 'softDiceLoss');
    const p = tf.softmax(tf.reshape(logits, [-1, numClasses]) as tf.Tensor2D);
    const inter = tf.sum(tf.mul(p, y), 0);
    const denom = tf.add(tf.sum(p, 0), tf.sum(y, 0));
    const dice = tf.div(tf.add(tf.mul(inter, 2), smooth), tf.add(denom, smooth));
    const fg = tf.slice(dice, [1], [numClasses - 1]);
    return tf.sub(1, tf.mean(fg)) as tf.Scalar;
  });
}

/** crossEntropyLoss + softDiceLoss (unweighted sum, the nnU-Net default). */
export function ceDiceLoss(logits: tf.Tensor, labels: tf.Tensor, numClasses: number): tf.Scalar {
  return tf.tidy(() => tf.add(crossEntropyLoss(logits, labels), softDiceLoss(logits, labels, numClasses)) as tf.Scalar);
}

/**
 * Mean per-pixel Shannon entropy of the softmax, H = -sum_c p_c log p_c (nats): TENT (Wang et al., ICLR 2021,
 * eq. 1) and OSUDA's L_SE (Liu et al., MICCAI 2021, sec. 2.3) minimise it.
 */
export function entropyLoss(logits: tf.Tensor): tf.Scalar {
  return tf.tidy(() => {
    const k = numClassesOf(logits, 'entropyLoss');
    const z = tf.reshape(logits, [-1, k]) as tf.Tensor2D;
    const logp = tf.logSoftmax(z);
    return tf.neg(tf.mean(tf.sum(tf.mul(tf.exp(logp), logp), -1))) as tf.Scalar;
  });
}

export type LossKind = 'ce' | 'dice' | 'ce+dice';

/** The segmentation loss named by `kind`. */
export function segmentationLoss(kind: LossKind, logits: tf.Tensor, labels: tf.Tensor, numClasses: number): tf.Scalar {
  switch (kind) {
    case 'ce':
      return crossEntropyLoss(logits, labels);
    case 'dice':
      return softDiceLoss(logits, labels, numClasses);
    case 'ce+dice':
      return ceDiceLoss(logits, labels, numClasses);
    default: {
      const never: never = kind;
      throw new TrainError('INVALID_CONFIG', `unknown loss '${String(never)}' (expected ce, dice or ce+dice)`);
    }
  }
}
