/** Small helpers shared by the adaptation methods: batches of target images, seeded epoch orders, entropy. */
import * as tf from '@tensorflow/tfjs-core';
import type { UNet } from '../model/index.ts';
import type { Rng } from '../../protocol/common/index.ts';
import type { UnlabeledSlices } from './unlabeled-slices.ts';

/** NHWC tensor of the given slices. */
export function imageBatch(ds: UnlabeledSlices, indices: readonly number[]): tf.Tensor4D {
  const px = ds.height * ds.width * ds.channels;
  const out = new Float32Array(indices.length * px);
  indices.forEach((s, i) => out.set(ds.images.subarray(s * px, (s + 1) * px), i * px));
  return tf.tensor4d(out, [indices.length, ds.height, ds.width, ds.channels]);
}

/** Shuffled slice indices cut into batches (the last one may be smaller). */
export function epochBatches(n: number, batchSize: number, rng: Rng | null): number[][] {
  const order = Array.from({ length: n }, (_, i) => i);
  if (rng) rng.shuffle(order);
  const out: number[][] = [];
  for (let i = 0; i < n; i += batchSize) out.push(order.slice(i, i + batchSize));
  return out;
}

/** Mean over pixels of the Shannon entropy -Σ_c p_c log p_c of the softmax (TENT, Wang et al. ICLR 2021, eq. 2). */
export function meanEntropy(logits: tf.Tensor): tf.Scalar {
  return tf.tidy(() => {
    const logp = tf.logSoftmax(logits);
    return tf.neg(tf.mean(tf.sum(tf.mul(tf.exp(logp), logp), -1))) as tf.Scalar;
  });
}

/** Argmax labels of a whole set with running BN statistics (inference mode). */
export function predictLabels(unet: UNet, ds: UnlabeledSlices, batchSize = 8): Uint8Array {
  const px = ds.height * ds.width;
  const out = new Uint8Array(ds.n * px);
  for (let s = 0; s < ds.n; s += batchSize) {
    const idx = Array.from({ length: Math.min(batchSize, ds.n - s) }, (_, i) => s + i);
    const labels = tf.tidy(() => {
      const x = imageBatch(ds, idx);
      const r = unet.forward(x, { bn: 'running', collectStats: false });
      return tf.argMax(r.logits, -1);
    });
    out.set(labels.dataSync() as Int32Array, s * px);
    labels.dispose();
  }
  return out;
}

/** Disposes every tensor of a forward's batch statistics. */
export function disposeStats(stats: Map<string, { mean: tf.Tensor; variance: tf.Tensor }>): void {
  for (const s of stats.values()) {
    s.mean.dispose();
    s.variance.dispose();
  }
}
