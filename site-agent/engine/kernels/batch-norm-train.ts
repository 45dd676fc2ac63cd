/**
 * Training-mode batch normalisation (Ioffe & Szegedy 2015, Alg. 1; backward pass sec. 3) as ONE
 * differentiable op. Written with tf ops (tf.moments + tf.batchNorm), tfjs records ~25 full-tensor ops per
 * BN layer for forward + backward (broadcast multiplies, sums, tiles, ones-tensors); on the fedsfda-native
 * backend those dominated the step once convolutions were native. Here the statistics are two native
 * passes, the forward one, and the backward two (per-channel sums, then dx), with the analytic gradient:
 *   xhat = (x - mean) / sqrt(var + eps),  y = gamma * xhat + beta,
 *   dbeta = sum dy,  dgamma = sum dy * xhat,  dx = gamma / sqrt(var + eps) * (dy - dbeta/M - xhat * dgamma/M),
 * sums over all axes but the last (channels), M = number of summed elements per channel.
 * On other backends the same function runs the same maths with tf ops, so callers need no branch.
 * The returned batch mean/variance (biased) are for running-statistics updates; no gradient flows
 * through them separately (their effect on y is already inside dx).
 */
import * as tf from '@tensorflow/tfjs-core';
import type { MathBackendCPU } from '@tensorflow/tfjs-backend-cpu';
import { loadNativeAddon, type NativeAddon } from '../native-addon.ts';
import { NATIVE_BACKEND } from '../native-backend.ts';
import { EngineError } from '../errors.ts';

export interface BatchNormTrainResult {
  y: tf.Tensor;
  mean: tf.Tensor1D;
  variance: tf.Tensor1D;
}

/** The addon when the active backend is fedsfda-native, else null. */
function activeNative(): { addon: NativeAddon; backend: MathBackendCPU } | null {
  if (tf.getBackend() !== NATIVE_BACKEND) return null;
  const l = loadNativeAddon();
  return l.ok ? { addon: l.addon, backend: tf.backend() as MathBackendCPU } : null;
}

function values(backend: MathBackendCPU, t: tf.Tensor): Float32Array {
  const v = backend.data.get(t.dataId).values;
  if (!(v instanceof Float32Array)) throw new EngineError('BAD_ARGUMENT', `batchNormTrain: expected float32 data, got ${t.dtype}`);
  return v;
}

/**
 * @example
 *   const { y, mean, variance } = batchNormTrain(h, gamma, beta, 1e-5);  // h: [N, H, W, C]
 */
export function batchNormTrain(x: tf.Tensor, gamma: tf.Tensor1D, beta: tf.Tensor1D, eps = 1e-5): BatchNormTrainResult {
  const C = x.shape[x.rank - 1];
  if (x.rank < 2 || x.dtype !== 'float32' || x.size === 0) {
    throw new EngineError('BAD_ARGUMENT', `batchNormTrain: x must be a non-empty float32 tensor of rank >= 2, got ${x.dtype}[${x.shape}]`);
  }
  if (gamma.size !== C || beta.size !== C) {
    throw new EngineError('BAD_ARGUMENT', `batchNormTrain: gamma and beta need ${C} values (x's last axis), got ${gamma.size} and ${beta.size}`);
  }
  if (!(eps > 0)) throw new EngineError('BAD_ARGUMENT', `batchNormTrain: eps must be > 0, got ${eps}`);
  const axes = Array.from({ length: x.rank - 1 }, (_, i) => i);
  const M = x.size / C;

  // Statistics: no tape through them (constants for the custom op below, whose dx accounts for them).
  const nat = activeNative();
  let mean: tf.Tensor1D, variance: tf.Tensor1D;
  if (nat) {
    const m = new Float32Array(C), v = new Float32Array(C);
    nat.addon.bnStats(values(nat.backend, x), C, m, v);
    mean = tf.tensor1d(m);
    variance = tf.tensor1d(v);
  } else {
    const mo = tf.moments(x, axes);
    mean = mo.mean as tf.Tensor1D;
    variance = mo.variance as tf.Tensor1D;
  }

  const op = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [xi, g, b, mu, va] = args as tf.Tensor[];
    const save = args[5] as tf.GradSaveFunc;
    save([xi, g, mu, va]);
    const n = activeNative();
    const value = n
      ? (() => {
          const out = new Float32Array(xi.size);
          n.addon.batchNorm(values(n.backend, xi), out, values(n.backend, mu), values(n.backend, va), values(n.backend, b), values(n.backend, g), eps);
          return tf.tensor(out, xi.shape, 'float32');
        })()
      : tf.batchNorm(xi, mu as tf.Tensor1D, va as tf.Tensor1D, b as tf.Tensor1D, g as tf.Tensor1D, eps);
    const gradFunc = (dy: tf.Tensor, saved: tf.Tensor[]): tf.Tensor[] => {
      const [sx, sg, smu, sva] = saved;
      const zeros = [tf.zerosLike(smu), tf.zerosLike(sva)];
      const nb = activeNative();
      if (nb && dy.dtype === 'float32') {
        const dx = new Float32Array(sx.size), dgamma = new Float32Array(C), dbeta = new Float32Array(C);
        nb.addon.bnBackward(values(nb.backend, dy), values(nb.backend, sx), values(nb.backend, smu), values(nb.backend, sva), values(nb.backend, sg), eps, dx, dgamma, dbeta);
        return [tf.tensor(dx, sx.shape, 'float32'), tf.tensor1d(dgamma), tf.tensor1d(dbeta), ...zeros];
      }
      const rstd = tf.rsqrt(tf.add(sva, eps));
      const xhat = tf.mul(tf.sub(sx, smu), rstd);
      const dbeta = tf.sum(dy, axes);
      const dgamma = tf.sum(tf.mul(dy, xhat), axes);
      const dx = tf.mul(tf.mul(sg, rstd), tf.sub(tf.sub(dy, tf.div(dbeta, M)), tf.mul(xhat, tf.div(dgamma, M))));
      return [dx, dgamma, dbeta, ...zeros];
    };
    return { value, gradFunc };
  });
  const y = op(x, gamma, beta, mean, variance);
  return { y, mean, variance };
}
