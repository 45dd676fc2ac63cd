import * as tf from '@tensorflow/tfjs-core';
import { planInferBatches, plansEnabled } from '../engine/index.ts';
import type { UNet } from '../model/index.ts';
import { checkImages, TrainError, yieldToEventLoop } from '../training/index.ts';

function checkInput(unet: UNet, images: Float32Array, n: number, h: number, w: number, c: number, batchSize: number, fn: string): void {
  checkImages(unet, images, n, h, w, c, fn);
  if (!Number.isInteger(batchSize) || batchSize < 1) {
    throw new TrainError('INVALID_INPUT', `${fn}: batchSize must be a positive integer, got ${batchSize}`);
  }
}

/** Runs the model batch by batch (BN with running statistics) and hands each batch's logits to `emit`. */
function runBatches(
  unet: UNet,
  images: Float32Array,
  n: number,
  h: number,
  w: number,
  c: number,
  batchSize: number,
  fn: string,
  emit: (logits: tf.Tensor4D, first: number) => void,
): void {
  checkInput(unet, images, n, h, w, c, batchSize, fn);
  const img = h * w * c;
  for (let s = 0; s < n; s += batchSize) {
    const m = Math.min(batchSize, n - s);
    tf.tidy(() => {
      const x = tf.tensor4d(images.subarray(s * img, (s + m) * img), [m, h, w, c]);
      emit(unet.forward(x, { bn: 'running', collectStats: false }).logits, s);
    });
  }
}

/** Per-pixel argmax labels, n*h*w, with BN in inference mode. Ties go to the lower class index. */
export function predict(unet: UNet, images: Float32Array, n: number, h: number, w: number, c: number, batchSize = 8): Uint8Array {
  const out = new Uint8Array(n * h * w);
  if (plansEnabled(unet)) {
    checkInput(unet, images, n, h, w, c, batchSize, 'predict');
    const k = unet.config.numClasses;
    planInferBatches(unet, images, n, h, w, batchSize, (logits, first) => {
      for (let i = 0; i < logits.length / k; i++) {
        let best = 0;
        for (let j = 1; j < k; j++) if (logits[i * k + j] > logits[i * k + best]) best = j;
        out[first * h * w + i] = best;
      }
    });
    return out;
  }
  runBatches(unet, images, n, h, w, c, batchSize, 'predict', (logits, first) => {
    out.set(tf.argMax(logits, -1).dataSync() as Int32Array, first * h * w);
  });
  return out;
}

/**
 * `predict` giving the event loop a turn after every batch, so that a site agent answers heartbeats during a long
 * evaluation. Each batch is the same slices `predict` would form (inference is per batch), so the labels are the same.
 */
export async function predictAsync(unet: UNet, images: Float32Array, n: number, h: number, w: number, c: number, batchSize = 8): Promise<Uint8Array> {
  checkInput(unet, images, n, h, w, c, batchSize, 'predict');
  const out = new Uint8Array(n * h * w);
  const img = h * w * c;
  for (let s = 0; s < n; s += batchSize) {
    const m = Math.min(batchSize, n - s);
    out.set(predict(unet, images.subarray(s * img, (s + m) * img), m, h, w, c, batchSize), s * h * w);
    await yieldToEventLoop();
  }
  return out;
}

/** Per-pixel softmax probabilities, n*h*w*numClasses (class axis last), with BN in inference mode. */
export function predictProbs(unet: UNet, images: Float32Array, n: number, h: number, w: number, c: number, batchSize = 8): Float32Array {
  const k = unet.config.numClasses;
  const out = new Float32Array(n * h * w * k);
  if (plansEnabled(unet)) {
    checkInput(unet, images, n, h, w, c, batchSize, 'predictProbs');
    planInferBatches(unet, images, n, h, w, batchSize, (logits, first) => softmaxInto(logits, k, out, first * h * w * k));
    return out;
  }
  runBatches(unet, images, n, h, w, c, batchSize, 'predictProbs', (logits, first) => {
    out.set(tf.softmax(logits).dataSync() as Float32Array, first * h * w * k);
  });
  return out;
}

/** Row-wise softmax over the class axis (max-subtracted), written at `at`. */
function softmaxInto(logits: Float32Array, k: number, out: Float32Array, at: number): void {
  for (let i = 0; i < logits.length; i += k) {
    let m = logits[i];
    for (let j = 1; j < k; j++) m = Math.max(m, logits[i + j]);
    let s = 0;
    for (let j = 0; j < k; j++) s += Math.exp(logits[i + j] - m);
    for (let j = 0; j < k; j++) out[at + i + j] = Math.exp(logits[i + j] - m) / s;
  }
}
