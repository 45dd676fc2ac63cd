import * as tf from '@tensorflow/tfjs-core';
import { BN_EPSILON } from './batch-norm.ts';
import { ModelError } from './model-error.ts';

/** Most groups a group-norm layer gets (Wu & He's default G = 32). */
export const GROUP_NORM_MAX_GROUPS = 32;

/**
 * Groups of a group-norm layer over `channels` channels: Opacus's BatchNorm replacement rule
 * (`opacus/validators/batch_norm.py`: `nn.GroupNorm(min(32, C), C)`), extended to channel counts that 32 does not
 * divide by taking the largest divisor of C that is <= 32. Fixed by the channel count alone, so a site reading a
 * GroupNorm U-Net off the wire knows its groups. For C <= 32 every channel is its own group (instance norm, which
 * nnU-Net uses for segmentation).
 */
export function groupNormGroups(channels: number): number {
  if (!Number.isInteger(channels) || channels < 1) throw new ModelError('INVALID_CONFIG', `group norm needs a positive channel count, got ${channels}`);
  for (let g = Math.min(GROUP_NORM_MAX_GROUPS, channels); g > 1; g--) if (channels % g === 0) return g;
  return 1;
}

/**
 * Group normalisation (Wu & He, "Group Normalization", ECCV 2018, eq. 1-3 with S_i = the (H, W, C/G) set of one
 * example's group): y = gamma * (x - mu_ng) / sqrt(var_ng + eps) + beta over NHWC input, biased variance, eps 1e-5.
 * Every statistic belongs to one example, so an example's output (and its gradient) does not depend on the rest of
 * the batch: per-example gradients are well defined (DP-SGD). Differentiable through tf.moments.
 */
export function groupNormApply(x: tf.Tensor4D, gamma: tf.Tensor1D, beta: tf.Tensor1D, groups: number, eps = BN_EPSILON): tf.Tensor4D {
  const [n, h, w, c] = x.shape;
  if (c % groups !== 0) throw new ModelError('INVALID_INPUT', `group norm: ${c} channels do not split into ${groups} groups`);
  return tf.tidy(() => {
    let normalized: tf.Tensor4D;
    if (groups === c) {
      // Instance norm: moments over the contiguous (H, W) axes, no 5-d reshape.
      const m = tf.moments(x, [1, 2], true);
      normalized = tf.mul(tf.sub(x, m.mean), tf.rsqrt(tf.add(m.variance, eps)));
    } else {
      const xg = tf.reshape(x, [n, h, w, groups, c / groups]);
      const m = tf.moments(xg, [1, 2, 4], true);
      normalized = tf.reshape(tf.mul(tf.sub(xg, m.mean), tf.rsqrt(tf.add(m.variance, eps))), [n, h, w, c]);
    }
    return tf.add(tf.mul(normalized, gamma), beta);
  });
}
