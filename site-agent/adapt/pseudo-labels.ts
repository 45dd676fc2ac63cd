/**
 * Class-balanced confident pseudo-labels — Zou, Yu, Kumar, Wang, "Unsupervised Domain Adaptation for Semantic
 * Segmentation via Class-Balanced Self-Training", ECCV 2018, sec. 4.2 (CBST): instead of one global confidence
 * threshold (which keeps mostly the easy, large classes), each class c keeps the pixels predicted as c whose
 * confidence is in the top `keepFraction` of that class's predictions, i.e. the threshold τ_c is the class's own
 * (1 - keepFraction) confidence quantile. Computed from the model's predictions only (no labels).
 */
import * as tf from '@tensorflow/tfjs-core';
import type { UNet } from '../model/index.ts';
import { AdaptError } from './adapt-error.ts';
import { epochBatches, imageBatch } from './batching.ts';
import type { UnlabeledSlices } from './unlabeled-slices.ts';

export interface PseudoLabels {
  /** n*h*w predicted classes. */
  readonly labels: Int32Array;
  /** n*h*w: 1 where the pixel is pseudo-labelled, else 0. */
  readonly mask: Float32Array;
  /** Per-class confidence thresholds τ_c (Infinity for a class that is never predicted). */
  readonly thresholds: number[];
  readonly selectedFraction: number;
}

/** Per class, the pixels predicted as that class with confidence >= the class's (1 - keepFraction) quantile. */
export function classBalancedSelection(conf: Float32Array, pred: Int32Array, numClasses: number, keepFraction: number): PseudoLabels {
  if (!(keepFraction > 0 && keepFraction <= 1)) throw new AdaptError('BAD_OPTION', `keepFraction must be in (0, 1], got ${keepFraction}`);
  const perClass: number[][] = Array.from({ length: numClasses }, () => []);
  for (let i = 0; i < pred.length; i++) perClass[pred[i]].push(conf[i]);
  const thresholds = perClass.map((v) => {
    if (v.length === 0) return Infinity;
    v.sort((a, b) => a - b);
    return v[Math.min(v.length - 1, Math.floor((1 - keepFraction) * v.length))];
  });
  const mask = new Float32Array(pred.length);
  let selected = 0;
  for (let i = 0; i < pred.length; i++) {
    if (conf[i] >= thresholds[pred[i]]) {
      mask[i] = 1;
      selected++;
    }
  }
  return { labels: Int32Array.from(pred), mask, thresholds, selectedFraction: selected / Math.max(1, pred.length) };
}

/** Predicts the whole target set in inference mode and selects class-balanced confident pseudo-labels. */
export function classBalancedPseudoLabels(unet: UNet, target: UnlabeledSlices, keepFraction: number, batchSize = 8): PseudoLabels {
  const px = target.height * target.width;
  const conf = new Float32Array(target.n * px);
  const pred = new Int32Array(target.n * px);
  for (const idx of epochBatches(target.n, batchSize, null)) {
    const [c, p] = tf.tidy(() => {
      const prob = tf.softmax(unet.forward(imageBatch(target, idx), { bn: 'running', collectStats: false }).logits);
      return [tf.max(prob, -1), tf.argMax(prob, -1)];
    });
    conf.set(c.dataSync() as Float32Array, idx[0] * px);
    pred.set(p.dataSync() as Int32Array, idx[0] * px);
    c.dispose();
    p.dispose();
  }
  return classBalancedSelection(conf, pred, unet.config.numClasses, keepFraction);
}

/**
 * Memory-consistent selection (Liu et al., MedIA 2023, sec. 3.3): keeps a selected pixel only where the remembered
 * prediction has the same class.
 */
export function agreeWithMemory(pl: PseudoLabels, remembered: Int32Array): PseudoLabels {
  if (remembered.length !== pl.labels.length) {
    throw new AdaptError('BAD_SHAPE', `memory holds ${remembered.length} predictions, expected ${pl.labels.length}`);
  }
  const mask = new Float32Array(pl.mask.length);
  let selected = 0;
  for (let i = 0; i < mask.length; i++) {
    if (pl.mask[i] > 0 && pl.labels[i] === remembered[i]) {
      mask[i] = 1;
      selected++;
    }
  }
  return { ...pl, mask, selectedFraction: selected / Math.max(1, mask.length) };
}
