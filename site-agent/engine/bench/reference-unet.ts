/**
 * The engine's reference network for benchmarking and kernel coverage: a plain-tf-ops 2-D U-Net
 * (conv3x3-BN-ReLU x2 per level, 2x2 max-pool, nearest upsampling, skip concatenation, 1x1 classifier,
 * softmax cross-entropy, SGD), written so that every op the real model uses is exercised on the backend
 * under test. It is not the product model (that lives in site-agent/model); it only has to be the same
 * compute, so that its FLOP count and op mix are representative.
 */
import * as tf from '@tensorflow/tfjs-core';
import { Rng } from '../../../protocol/common/index.ts';
import { batchNormTrain } from '../kernels/index.ts';

export interface ReferenceUNetConfig {
  inChannels: number;
  numClasses: number;
  baseChannels: number;
  /** Number of 2x2 poolings. */
  depth: number;
  /**
   * Decoder upsampling: 'nearest' (resize, no weights; the issue's ~5.5 GFLOP reference) or 'transpose'
   * (2x2 stride-2 transposed conv halving the channels, as site-agent/model's U-Net does). Default 'nearest'.
   */
  upsample?: 'nearest' | 'transpose';
  /** Batch norm as tf.moments + tf.batchNorm ('ops', default) or the engine's fused batchNormTrain ('fused'). */
  bn?: 'ops' | 'fused';
}

export const REFERENCE_CONFIG: ReferenceUNetConfig = { inChannels: 1, numClasses: 4, baseChannels: 16, depth: 2 };

export interface ConvSpec {
  name: string;
  cin: number;
  cout: number;
  k: number;
  /** Spatial scale of the conv's input relative to the image (1, 1/2, 1/4...). */
  scale: number;
  /** Transposed convolution (k x k, stride k): FLOPs are counted per input pixel like a conv. */
  transpose?: boolean;
}

/** The conv layers in forward order, used both to create parameters and to count FLOPs. */
export function convSpecs(c: ReferenceUNetConfig): ConvSpec[] {
  const specs: ConvSpec[] = [];
  let cin = c.inChannels;
  for (let l = 0; l <= c.depth; l++) {
    const ch = c.baseChannels * 2 ** l;
    const name = l === c.depth ? 'bottleneck' : `enc${l + 1}`;
    specs.push({ name: `${name}.conv1`, cin, cout: ch, k: 3, scale: 2 ** -l });
    specs.push({ name: `${name}.conv2`, cin: ch, cout: ch, k: 3, scale: 2 ** -l });
    cin = ch;
  }
  for (let l = c.depth - 1; l >= 0; l--) {
    const ch = c.baseChannels * 2 ** l;
    if (c.upsample === 'transpose') {
      specs.push({ name: `up${l + 1}`, cin, cout: ch, k: 2, scale: 2 ** -(l + 1), transpose: true });
      cin = ch;
    }
    specs.push({ name: `dec${l + 1}.conv1`, cin: cin + ch, cout: ch, k: 3, scale: 2 ** -l });
    specs.push({ name: `dec${l + 1}.conv2`, cin: ch, cout: ch, k: 3, scale: 2 ** -l });
    cin = ch;
  }
  specs.push({ name: 'head', cin, cout: c.numClasses, k: 1, scale: 1 });
  return specs;
}

/**
 * FLOPs of one SGD step (forward + backward) at batch n, size h x w: each conv costs
 * 2*k*k*cin*cout per output pixel forward, the same again for the filter gradient, and again for the
 * input gradient except in the first layer (no gradient w.r.t. the image). BN, pooling, activations
 * and the loss are O(activations) and left out (they are < 1% of the total).
 */
export function trainStepFlops(c: ReferenceUNetConfig, n: number, h: number, w: number): number {
  let total = 0;
  convSpecs(c).forEach((s, i) => {
    const fwd = 2 * s.k * s.k * s.cin * s.cout * n * h * s.scale * w * s.scale;
    total += fwd * (i === 0 ? 2 : 3);
  });
  return total;
}

export type Params = Map<string, tf.Variable>;

/** He-normal conv weights, BN gamma=1 beta=0, from a seeded Rng (reproducible across backends). */
export function createReferenceParams(c: ReferenceUNetConfig, seed: number): Params {
  const rng = new Rng(seed);
  const p: Params = new Map();
  for (const s of convSpecs(c)) {
    const n = s.k * s.k * s.cin * s.cout;
    const data = new Float32Array(n);
    const std = Math.sqrt(2 / (s.k * s.k * s.cin));
    for (let i = 0; i < n; i++) data[i] = rng.normal() * std;
    // Variable names are left to tfjs (they are engine-global); the map keys are the stable names.
    // tf.conv2dTranspose takes its filter as [k, k, outChannels, inChannels].
    const shape: [number, number, number, number] = s.transpose ? [s.k, s.k, s.cout, s.cin] : [s.k, s.k, s.cin, s.cout];
    p.set(`${s.name}.w`, tf.variable(tf.tensor4d(data, shape), true));
    if (s.transpose) {
      p.set(`${s.name}.b`, tf.variable(tf.zeros([s.cout]), true));
    } else if (s.name === 'head') {
      p.set('head.b', tf.variable(tf.zeros([s.cout]), true));
    } else {
      p.set(`${s.name}.gamma`, tf.variable(tf.ones([s.cout]), true));
      p.set(`${s.name}.beta`, tf.variable(tf.zeros([s.cout]), true));
    }
  }
  return p;
}

function get(p: Params, name: string): tf.Variable {
  const v = p.get(name);
  if (!v) throw new Error(`reference U-Net: missing parameter ${name}`);
  return v;
}

function convBnRelu(p: Params, name: string, x: tf.Tensor4D, bn: 'ops' | 'fused'): tf.Tensor4D {
  const y = tf.conv2d(x, get(p, `${name}.w`) as tf.Tensor4D, 1, 'same');
  if (bn === 'fused') return tf.relu(batchNormTrain(y, get(p, `${name}.gamma`) as tf.Tensor1D, get(p, `${name}.beta`) as tf.Tensor1D, 1e-5).y) as tf.Tensor4D;
  // Training-mode batch norm over N, H, W (Ioffe & Szegedy 2015, Alg. 1).
  const { mean, variance } = tf.moments(y, [0, 1, 2]);
  const normed = tf.batchNorm(y, mean, variance, get(p, `${name}.beta`), get(p, `${name}.gamma`), 1e-5);
  return tf.relu(normed) as tf.Tensor4D;
}

/** Logits [N, H, W, numClasses]. */
export function referenceForward(p: Params, c: ReferenceUNetConfig, x: tf.Tensor4D): tf.Tensor4D {
  const skips: tf.Tensor4D[] = [];
  const bn = c.bn ?? 'ops';
  const block = (name: string, hIn: tf.Tensor4D) => convBnRelu(p, `${name}.conv2`, convBnRelu(p, `${name}.conv1`, hIn, bn), bn);
  let h = x;
  for (let l = 0; l < c.depth; l++) {
    h = block(`enc${l + 1}`, h);
    skips.push(h);
    h = tf.maxPool(h, 2, 2, 'valid');
  }
  h = block('bottleneck', h);
  for (let l = c.depth - 1; l >= 0; l--) {
    const skip = skips[l];
    if (c.upsample === 'transpose') {
      const [n, hh, ww, ch] = skip.shape;
      h = tf.add(tf.conv2dTranspose(h, get(p, `up${l + 1}.w`) as tf.Tensor4D, [n, hh, ww, ch], 2, 'valid'), get(p, `up${l + 1}.b`));
    } else {
      h = tf.image.resizeNearestNeighbor(h, [skip.shape[1], skip.shape[2]]);
    }
    h = tf.concat([h, skip], 3);
    h = block(`dec${l + 1}`, h);
  }
  return tf.add(tf.conv2d(h, get(p, 'head.w') as tf.Tensor4D, 1, 'same'), get(p, 'head.b'));
}

/** Mean softmax cross-entropy over pixels; labels are one-hot [N, H, W, C]. */
export function softmaxCrossEntropy(logits: tf.Tensor4D, oneHot: tf.Tensor4D): tf.Scalar {
  return tf.neg(tf.mean(tf.sum(tf.mul(oneHot, tf.logSoftmax(logits, -1)), -1))) as tf.Scalar;
}

/** One SGD step; returns the loss value (synchronously read, so the step is complete when it returns). */
export function referenceTrainStep(p: Params, c: ReferenceUNetConfig, x: tf.Tensor4D, oneHot: tf.Tensor4D, lr: number): number {
  return tf.tidy(() => {
    const { value, grads } = tf.variableGrads(() => softmaxCrossEntropy(referenceForward(p, c, x), oneHot), [...p.values()]);
    for (const v of p.values()) v.assign(tf.sub(v, tf.mul(grads[v.name], lr)));
    return value.dataSync()[0];
  });
}

/** A seeded random batch: images N(0,1), labels uniform over classes (one-hot). */
export function randomBatch(c: ReferenceUNetConfig, n: number, h: number, w: number, seed: number): { x: tf.Tensor4D; y: tf.Tensor4D } {
  const rng = new Rng(seed);
  const xs = new Float32Array(n * h * w * c.inChannels);
  for (let i = 0; i < xs.length; i++) xs[i] = rng.normal();
  const ys = new Float32Array(n * h * w * c.numClasses);
  for (let i = 0; i < n * h * w; i++) ys[i * c.numClasses + rng.int(c.numClasses)] = 1;
  return { x: tf.tensor4d(xs, [n, h, w, c.inChannels]), y: tf.tensor4d(ys, [n, h, w, c.numClasses]) };
}
