import * as tf from '@tensorflow/tfjs-core';

/** BN epsilon (PyTorch's default); added to the variance before the square root. */
export const BN_EPSILON = 1e-5;

/**
 * y = gamma * (x - mean) / sqrt(variance + eps) + beta over the last (channel) axis
 * (Ioffe & Szegedy, ICML 2015, Alg. 1), computed as x * scale + shift so that only two full-size elementwise ops run.
 * When mean/variance are the batch's own moments, the gradient flows through them as in the paper's backward pass.
 */
export function batchNormApply(
  x: tf.Tensor,
  mean: tf.Tensor1D,
  variance: tf.Tensor1D,
  gamma: tf.Tensor1D,
  beta: tf.Tensor1D,
): tf.Tensor {
  return tf.tidy(() => {
    const scale = tf.mul(gamma, tf.rsqrt(tf.add(variance, BN_EPSILON)));
    const shift = tf.sub(beta, tf.mul(mean, scale));
    return tf.add(tf.mul(x, scale), shift);
  });
}

/** Per-channel mean and biased (population) variance over every axis but the last. */
export function channelMoments(x: tf.Tensor): { mean: tf.Tensor1D; variance: tf.Tensor1D } {
  const axes = Array.from({ length: x.rank - 1 }, (_, i) => i);
  const m = tf.moments(x, axes);
  return { mean: m.mean as tf.Tensor1D, variance: m.variance as tf.Tensor1D };
}
