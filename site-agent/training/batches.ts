import * as tf from '@tensorflow/tfjs-core';
import type { SliceDataset } from '../data/index.ts';
import type { UNet } from '../model/index.ts';
import { TrainError } from './train-error.ts';

/**
 * Checks that a dataset fits a model: channels, numClasses, a spatial size divisible by 2^depth, buffer lengths,
 * and every label < numClasses. O(n) once per call; cheap next to one training step.
 */
export function checkDataset(unet: UNet, data: SliceDataset, fn: string): void {
  const { config } = unet;
  if (!Number.isInteger(data.n) || data.n < 1) throw new TrainError('INVALID_DATA', `${fn}: dataset has no slices (n = ${data.n})`);
  if (data.channels !== config.inChannels) {
    throw new TrainError('INVALID_DATA', `${fn}: dataset has ${data.channels} channels, the model expects ${config.inChannels}`);
  }
  if (data.numClasses !== config.numClasses) {
    throw new TrainError('INVALID_DATA', `${fn}: dataset has ${data.numClasses} classes, the model has ${config.numClasses}`);
  }
  checkImages(unet, data.images, data.n, data.height, data.width, data.channels, fn);
  const px = data.n * data.height * data.width;
  if (data.labels.length !== px) {
    throw new TrainError('INVALID_DATA', `${fn}: labels hold ${data.labels.length} values, expected n*h*w = ${px}`);
  }
  for (let i = 0; i < px; i++) {
    if (data.labels[i] >= config.numClasses) {
      throw new TrainError('INVALID_DATA', `${fn}: label ${data.labels[i]} at index ${i} is >= numClasses ${config.numClasses}`);
    }
  }
}

/** Checks an NHWC image buffer against the model (shape, length, divisibility). */
export function checkImages(unet: UNet, images: Float32Array, n: number, h: number, w: number, c: number, fn: string): void {
  const f = 2 ** unet.config.depth;
  for (const [k, v] of [['n', n], ['height', h], ['width', w], ['channels', c]] as const) {
    if (!Number.isInteger(v) || v < 1) throw new TrainError('INVALID_DATA', `${fn}: ${k} must be a positive integer, got ${v}`);
  }
  if (c !== unet.config.inChannels) {
    throw new TrainError('INVALID_DATA', `${fn}: images have ${c} channels, the model expects ${unet.config.inChannels}`);
  }
  if (h % f !== 0 || w % f !== 0) throw new TrainError('INVALID_DATA', `${fn}: ${h}x${w} is not divisible by 2^depth = ${f}`);
  if (!(images instanceof Float32Array) || images.length !== n * h * w * c) {
    throw new TrainError('INVALID_DATA', `${fn}: images must be a Float32Array of n*h*w*c = ${n * h * w * c} values`);
  }
}

/** Copies the slices `indices` into an NHWC image tensor and an int32 [N, H, W] label tensor. */
export function makeBatch(data: SliceDataset, indices: readonly number[]): { x: tf.Tensor4D; y: tf.Tensor3D } {
  const { height: h, width: w, channels: c } = data;
  const { xs, ys } = batchArrays(data, indices);
  return { x: tf.tensor4d(xs, [indices.length, h, w, c]), y: tf.tensor3d(ys, [indices.length, h, w], 'int32') };
}

/** The slices `indices` as NHWC images and int32 class indices per pixel (plain arrays). */
export function batchArrays(data: SliceDataset, indices: readonly number[]): { xs: Float32Array; ys: Int32Array } {
  const { height: h, width: w, channels: c } = data;
  const imgSize = h * w * c;
  const px = h * w;
  const xs = new Float32Array(indices.length * imgSize);
  const ys = new Int32Array(indices.length * px);
  indices.forEach((s, j) => {
    xs.set(data.images.subarray(s * imgSize, (s + 1) * imgSize), j * imgSize);
    const lab = data.labels.subarray(s * px, (s + 1) * px);
    for (let i = 0; i < px; i++) ys[j * px + i] = lab[i];
  });
  return { xs, ys };
}
