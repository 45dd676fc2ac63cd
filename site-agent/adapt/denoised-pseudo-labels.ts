/**
 * Denoised pseudo-labels — Chen, Liu, Wang, Heng, Dou, "Source-Free Domain Adaptive Fundus Image Segmentation with
 * Denoised Pseudo-Labeling", MICCAI 2021 (code `cchen-cc/SFDA-DPL`, generate_pseudo.py), sec. 2.2-2.3, written for
 * K-class softmax outputs:
 * 1. N stochastic forward passes (MC dropout; here dropout of rate `dropout` on the latent features right before the
 *    1x1 classifier, where DeepLab's decoder in the paper has its dropout); mean probability p̄ = (1/N) Σ_i p_i,
 *    pseudo-label ŷ = argmax_c p̄_c, uncertainty u = std_i p_i,ŷ. A pixel is certain when u < τ_u (0.05 in the code)
 *    and p̄_ŷ >= τ_p.
 * 2. Class prototypes from the certain pixels, weighted by the mean probability (DPL eq. 3):
 *    c_k = Σ_i 1[ŷ_i = k, certain_i] p̄_ik z_i / Σ_i 1[ŷ_i = k, certain_i] p̄_ik, z_i the (mean) latent feature.
 * 3. A pixel keeps its pseudo-label when it is certain and its nearest prototype (squared Euclidean distance, DPL eq. 4)
 *    has the same class as ŷ.
 * The prototype sums (weight, Σ p̄ z per class) are sufficient statistics: several target sites can pool them by
 * (masked) summation before step 3 (federated multi-target adaptation).
 */
import * as tf from '@tensorflow/tfjs-core';
import type { UNet } from '../model/index.ts';
import type { Rng } from '../../protocol/common/index.ts';
import { AdaptError } from './adapt-error.ts';
import { epochBatches, imageBatch } from './batching.ts';
import type { UnlabeledSlices } from './unlabeled-slices.ts';

export interface DplOptions {
  /** Stochastic passes N. Default 8. */
  readonly passes?: number;
  /** Dropout rate on the latent features in the passes. Default 0.3. */
  readonly dropout?: number;
  /** Uncertainty threshold τ_u on the std of the predicted class's probability. Default 0.05 (DPL's code). */
  readonly uncertainty?: number;
  /** Minimum mean probability of the predicted class τ_p. Default 0.5. */
  readonly confidence?: number;
  /** Keep only pixels whose nearest class prototype agrees with the pseudo-label. Default true. */
  readonly prototypeFilter?: boolean;
  readonly batchSize?: number;
}

/** Per-class prototype sufficient statistics: Σ weights and Σ weight · latent (dim values per class). */
export interface PrototypeSums {
  readonly weight: Float64Array;
  /** numClasses x dim, row-major. */
  readonly sum: Float64Array;
  readonly dim: number;
}

/** What the teacher said about every target pixel (before the prototype filter). */
export interface TeacherPass {
  readonly labels: Int32Array;
  /** Mean probability of the predicted class. */
  readonly confidence: Float32Array;
  /** 1 where the pixel is certain (u < τ_u and p̄ >= τ_p). */
  readonly certain: Uint8Array;
  /** Mean latent features, n*h*w x dim. */
  readonly latent: Float32Array;
  /** Mean probabilities, n*h*w x K (for the class-balance statistics). */
  readonly probs: Float32Array;
  readonly dim: number;
  readonly numClasses: number;
}

export interface DenoisedLabels {
  readonly labels: Int32Array;
  /** 1 where the pixel keeps its pseudo-label. */
  readonly mask: Float32Array;
  readonly keptFraction: number;
  readonly certainFraction: number;
}

function option(name: string, v: number, lo: number, hi: number): number {
  if (!(v >= lo && v <= hi)) throw new AdaptError('BAD_OPTION', `${name} must be in [${lo}, ${hi}], got ${v}`);
  return v;
}

/** Step 1 over the whole target set (the model in inference mode with its running BN statistics). */
export function teacherPass(teacher: UNet, target: UnlabeledSlices, opts: DplOptions, rng: Rng): TeacherPass {
  const passes = opts.passes ?? 8;
  if (!Number.isInteger(passes) || passes < 1) throw new AdaptError('BAD_OPTION', `passes must be a positive integer, got ${passes}`);
  const rate = option('dropout', opts.dropout ?? 0.3, 0, 0.95);
  const tauU = option('uncertainty', opts.uncertainty ?? 0.05, 0, 1);
  const tauP = option('confidence', opts.confidence ?? 0.5, 0, 1);
  const k = teacher.config.numClasses;
  const dim = teacher.config.baseChannels;
  const px = target.height * target.width;
  const total = target.n * px;
  const labels = new Int32Array(total);
  const confidence = new Float32Array(total);
  const certain = new Uint8Array(total);
  const latent = new Float32Array(total * dim);
  const probs = new Float32Array(total * k);
  for (const idx of epochBatches(target.n, opts.batchSize ?? 8, null)) {
    const [z, mean, std] = tf.tidy(() => {
      const r = teacher.forward(imageBatch(target, idx), { bn: 'running', collectStats: false });
      const ps = Array.from({ length: passes }, () => tf.softmax(teacher.classify(rate > 0 ? tf.dropout(r.latent, rate, undefined, rng.int(2 ** 30)) : r.latent)));
      const stack = tf.stack(ps);
      const m = tf.mean(stack, 0);
      const sd = tf.sqrt(tf.mean(tf.squaredDifference(stack, m), 0));
      return [r.latent, m, sd];
    });
    const off = idx[0] * px;
    const zs = z.dataSync() as Float32Array;
    const ms = mean.dataSync() as Float32Array;
    const ss = std.dataSync() as Float32Array;
    latent.set(zs, off * dim);
    probs.set(ms, off * k);
    for (let i = 0; i < idx.length * px; i++) {
      let best = 0;
      for (let c = 1; c < k; c++) if (ms[i * k + c] > ms[i * k + best]) best = c;
      labels[off + i] = best;
      confidence[off + i] = ms[i * k + best];
      certain[off + i] = ss[i * k + best] < tauU && ms[i * k + best] >= tauP ? 1 : 0;
    }
    z.dispose();
    mean.dispose();
    std.dispose();
  }
  return { labels, confidence, certain, latent, probs, dim, numClasses: k };
}

/** Step 2's sums over the certain pixels (poolable by addition). */
export function prototypeSums(t: TeacherPass): PrototypeSums {
  const weight = new Float64Array(t.numClasses);
  const sum = new Float64Array(t.numClasses * t.dim);
  for (let i = 0; i < t.labels.length; i++) {
    if (!t.certain[i]) continue;
    const c = t.labels[i];
    const w = t.confidence[i];
    weight[c] += w;
    for (let j = 0; j < t.dim; j++) sum[c * t.dim + j] += w * t.latent[i * t.dim + j];
  }
  return { weight, sum, dim: t.dim };
}

/** Element-wise sum of several sites' prototype sums. */
export function addPrototypeSums(list: readonly PrototypeSums[]): PrototypeSums {
  if (list.length === 0) throw new AdaptError('BAD_SHAPE', 'addPrototypeSums needs at least one entry');
  const weight = new Float64Array(list[0].weight.length);
  const sum = new Float64Array(list[0].sum.length);
  for (const p of list) {
    if (p.weight.length !== weight.length || p.sum.length !== sum.length) throw new AdaptError('BAD_SHAPE', 'prototype sums differ in classes or feature size');
    p.weight.forEach((v, i) => (weight[i] += v));
    p.sum.forEach((v, i) => (sum[i] += v));
  }
  return { weight, sum, dim: list[0].dim };
}

/** Step 3: certain pixels whose nearest prototype agrees (classes without a prototype keep nothing). */
export function denoise(t: TeacherPass, protos: PrototypeSums, prototypeFilter = true): DenoisedLabels {
  const k = t.numClasses;
  const d = t.dim;
  const centre = new Float64Array(k * d);
  const has = Array.from({ length: k }, (_, c) => protos.weight[c] > 0);
  for (let c = 0; c < k; c++) if (has[c]) for (let j = 0; j < d; j++) centre[c * d + j] = protos.sum[c * d + j] / protos.weight[c];
  const mask = new Float32Array(t.labels.length);
  let kept = 0;
  let certain = 0;
  for (let i = 0; i < t.labels.length; i++) {
    if (!t.certain[i]) continue;
    certain++;
    if (prototypeFilter) {
      let best = -1;
      let bestD = Infinity;
      for (let c = 0; c < k; c++) {
        if (!has[c]) continue;
        let dist = 0;
        for (let j = 0; j < d; j++) dist += (t.latent[i * d + j] - centre[c * d + j]) ** 2;
        if (dist < bestD) {
          bestD = dist;
          best = c;
        }
      }
      if (best !== t.labels[i]) continue;
    }
    mask[i] = 1;
    kept++;
  }
  return { labels: t.labels, mask, keptFraction: kept / Math.max(1, t.labels.length), certainFraction: certain / Math.max(1, t.labels.length) };
}
