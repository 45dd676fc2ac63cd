/**
 * The input adapter's objective and its local search, shared by the curve searches (input-adapter.ts), the denoising
 * step (adapter-denoise.ts) and the band-permutation starts: the source-BN-statistics KL L(v) of input-adapter.ts's file
 * comment (DeepInversion, Yin et al., CVPR 2020, eq. 4, as FSM's source description, Yang et al., MedIA 2022, sec. 3.1),
 * scored on one batch or on the whole target, the Adam refinement of the curve values, and the entropy after AdaBN that
 * guards wider searches. Internal to the adapter: not exported from the barrel.
 */
import * as tf from '@tensorflow/tfjs-core';
import { BN_EPSILON, type UNet } from '../model/index.ts';
import type { Rng } from '../../protocol/common/index.ts';
import { adaptAdaBN } from './adabn.ts';
import { AdaptError } from './adapt-error.ts';
import { epochBatches, meanEntropy } from './batching.ts';
import { applyCurve, type IntensityCurve } from './intensity-curve.ts';
import { bnMeanVar, classPriors, type SourceStats } from './source-stats.ts';
import type { UnlabeledSlices } from './unlabeled-slices.ts';

export interface Targets {
  readonly layers: string[];
  /** Source class priors (null: no prior term). */
  readonly prior: tf.Tensor1D | null;
  readonly mean: Map<string, tf.Tensor1D>;
  readonly variance: Map<string, tf.Tensor1D>;
}

export function sourceTargets(unet: UNet, stats: SourceStats | null, first: number, count: number): Targets {
  const layers = unet.bnLayers.slice(first, Math.min(first + count, unet.bnLayers.length));
  if (layers.length === 0) throw new AdaptError('BAD_OPTION', `inputAdapter: no BN layer from index ${first} on (the model has ${unet.bnLayers.length})`);
  const fromStats = stats ? bnMeanVar(stats) : null;
  const mean = new Map<string, tf.Tensor1D>();
  const variance = new Map<string, tf.Tensor1D>();
  for (const l of layers) {
    const s = fromStats?.get(l);
    mean.set(l, s ? tf.tensor1d(Float32Array.from(s.mean)) : (tf.clone(unet.bnStats.get(`${l}.mean`)!) as tf.Tensor1D));
    variance.set(l, s ? tf.tensor1d(Float32Array.from(s.variance)) : (tf.clone(unet.bnStats.get(`${l}.var`)!) as tf.Tensor1D));
  }
  return { layers, mean, variance, prior: stats ? tf.tensor1d(Float32Array.from(classPriors(stats))) : null };
}

export function disposeTargets(t: Targets): void {
  for (const m of [t.mean, t.variance]) for (const v of m.values()) v.dispose();
  t.prior?.dispose();
}

export interface Weights {
  readonly entropyWeight: number;
  readonly priorWeight: number;
}

/** Mean over layers of the channel-mean KL(N(batch moments) || N(source moments)), plus λ_H·entropy + λ_π·prior KL. */
export function objective(unet: UNet, x: tf.Tensor4D, t: Targets, w: Weights): tf.Scalar {
  const r = unet.forward(x, { bn: 'running', collectStats: true });
  let kl: tf.Tensor = tf.scalar(0);
  for (const l of t.layers) {
    const s = r.batchStats.get(l)!;
    const vt = tf.add(s.variance, BN_EPSILON);
    const vs = tf.add(t.variance.get(l)!, BN_EPSILON);
    // KL(N(μt, vt) || N(μs, vs)) = ½ [log(vs/vt) + (vt + (μt - μs)²)/vs - 1], averaged over channels.
    const d = tf.mul(0.5, tf.sub(tf.add(tf.log(tf.div(vs, vt)), tf.div(tf.add(vt, tf.squaredDifference(s.mean, t.mean.get(l)!)), vs)), 1));
    kl = tf.add(kl, tf.mean(d));
  }
  let loss = tf.div(kl, Math.max(1, t.layers.length));
  if (w.entropyWeight > 0) loss = tf.add(loss, tf.mul(meanEntropy(r.logits), w.entropyWeight));
  if (w.priorWeight > 0 && t.prior) {
    // KL(π || τ̂), τ̂ the batch's mean softmax: the anatomy's class proportions do not change with the scanner.
    const k = r.logits.shape[3];
    const tau = tf.mean(tf.reshape(tf.softmax(r.logits), [-1, k]), 0);
    const kl2 = tf.sum(tf.mul(t.prior, tf.sub(tf.log(tf.add(t.prior, 1e-8)), tf.log(tf.add(tau, 1e-8)))));
    loss = tf.add(loss, tf.mul(kl2, w.priorWeight));
  }
  return loss as tf.Scalar;
}

export function batchInput(basis: Float32Array, target: UnlabeledSlices, idx: readonly number[], k: number, v: tf.Tensor): tf.Tensor4D {
  const px = target.height * target.width;
  const rows = new Float32Array(idx.length * px * k);
  idx.forEach((s, i) => rows.set(basis.subarray(s * px * k, (s + 1) * px * k), i * px * k));
  return tf.tidy(() => tf.reshape(tf.matMul(tf.tensor2d(rows, [idx.length * px, k]), tf.reshape(v, [k, 1])), [idx.length, target.height, target.width, 1]) as tf.Tensor4D);
}

/** The objective of one curve over the whole target set (inference, no gradient). */
export function scoreObjective(unet: UNet, target: UnlabeledSlices, basis: Float32Array, k: number, curve: IntensityCurve, t: Targets, o: Weights & { batchSize: number }): number {
  const v = tf.tensor1d(curve.values);
  let sum = 0;
  for (const idx of epochBatches(target.n, o.batchSize, null)) {
    const s = tf.tidy(() => objective(unet, batchInput(basis, target, idx, k, v), t, o));
    sum += s.dataSync()[0] * idx.length;
    s.dispose();
  }
  v.dispose();
  return sum / target.n;
}

/** Mean target entropy after AdaBN on the curve's output (the polarity check's criterion); restores the weights. */
export function scoreEntropyAfterAdaBn(unet: UNet, target: UnlabeledSlices, curve: IntensityCurve, batchSize: number): number {
  return scoreAfterAdaBn(unet, target, curve, batchSize).entropy;
}

/**
 * Mean target entropy and predicted class proportions (argmax over the target pixels) after AdaBN on the curve's
 * output, from one forward pass per batch; restores the weights.
 */
export function scoreAfterAdaBn(unet: UNet, target: UnlabeledSlices, curve: IntensityCurve, batchSize: number): { entropy: number; proportions: number[] } {
  const initial = unet.getWeights();
  const seen = applyCurve(curve, target);
  adaptAdaBN(unet, seen, { batchSize });
  const counts = new Float64Array(unet.config.numClasses);
  let sum = 0;
  for (const idx of epochBatches(seen.n, batchSize, null)) {
    const px = seen.height * seen.width;
    const data = new Float32Array(idx.length * px);
    idx.forEach((s, i) => data.set(seen.images.subarray(s * px, (s + 1) * px), i * px));
    const [e, labels] = tf.tidy(() => {
      const logits = unet.forward(tf.tensor4d(data, [idx.length, seen.height, seen.width, 1]), { bn: 'running', collectStats: false }).logits;
      return [meanEntropy(logits), tf.argMax(logits, -1)];
    });
    sum += e.dataSync()[0] * idx.length;
    for (const c of labels.dataSync()) counts[c]++;
    e.dispose();
    labels.dispose();
  }
  unet.setWeights(initial);
  const total = counts.reduce((a, b) => a + b, 0);
  return { entropy: sum / seen.n, proportions: Array.from(counts, (c) => c / total) };
}

export function argMin(c: readonly { score: number }[]): number {
  let best = 0;
  for (let i = 1; i < c.length; i++) if (c[i].score < c[best].score) best = i;
  return best;
}

export type Resolved = Weights & { steps: number; lr: number; randomStarts: number; screen: number; batchSize: number };

/** Adam steps on the curve values from `values`; returns the final values. */
export function refine(unet: UNet, target: UnlabeledSlices, basis: Float32Array, values: number[], t: Targets, o: Resolved, rng: Rng): number[] {
  const v = tf.variable(tf.tensor1d(values), true);
  const optimizer = tf.train.adam(o.lr);
  try {
    for (let step = 0; step < o.steps; step++) {
      const idx = epochBatches(target.n, o.batchSize, rng)[0];
      const cost = optimizer.minimize(() => objective(unet, batchInput(basis, target, idx, values.length, v), t, o), true, [v]);
      cost?.dispose();
    }
    return Array.from(v.dataSync());
  } finally {
    optimizer.dispose();
    v.dispose();
  }
}
