import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import type { WeightSet } from '../../protocol/index.ts';
import type { UNet } from '../model/index.ts';
import { Rng } from '../../protocol/common/index.ts';
import {
  adapt,
  adaptWithLabels,
  addPrototypeSums,
  classWeights,
  denoise,
  frequencyWeights,
  prototypeSums,
  ratioDivergence,
  teacherPass,
  toUnlabeled,
  type SourceStats,
  type TeacherPass,
} from './index.ts';
import { makeNestedBoxes, meanDice, toySourceSetup, TOY_SIZE } from './toy-shift-fixture.ts';

/** Four pixels, two classes, 2-d latents: pixel 3 is labelled 1 but sits at class 0's prototype. */
function handPass(): TeacherPass {
  return {
    labels: Int32Array.from([0, 0, 1, 1]),
    confidence: Float32Array.from([0.9, 0.8, 0.9, 0.7]),
    certain: Uint8Array.from([1, 1, 1, 1]),
    latent: Float32Array.from([0, 0, 0, 0.2, 4, 4, 0.1, 0.1]),
    probs: Float32Array.from([0.9, 0.1, 0.8, 0.2, 0.1, 0.9, 0.3, 0.7]),
    dim: 2,
    numClasses: 2,
  };
}

describe('denoised pseudo-labels (DPL)', () => {
  it('prototypes are confidence-weighted sums over certain pixels, poolable by addition', () => {
    const t = handPass();
    const p = prototypeSums(t);
    expect(Array.from(p.weight)).toEqual([0.9 + 0.8, 0.9 + 0.7].map((v) => Math.fround(v)).map((v, i) => (i === 0 ? Math.fround(0.9) + Math.fround(0.8) : Math.fround(0.9) + Math.fround(0.7))));
    expect(p.sum[2]).toBeCloseTo(0.9 * 4 + 0.7 * 0.1, 6);
    const twice = addPrototypeSums([p, p]);
    expect(Array.from(twice.sum)).toEqual(Array.from(p.sum, (v) => 2 * v));
  });

  it('keeps a certain pixel only where its nearest prototype agrees with its label', () => {
    const t = handPass();
    const d = denoise(t, prototypeSums(t));
    // Class 1's prototype is near (3.3, 3.3): pixel 3 at (0.1, 0.1) is nearer class 0's and loses its label.
    expect(Array.from(d.mask)).toEqual([1, 1, 1, 0]);
    expect(Array.from(denoise(t, prototypeSums(t), false).mask)).toEqual([1, 1, 1, 1]);
    const uncertain = { ...t, certain: Uint8Array.from([1, 0, 1, 1]) };
    expect(denoise(uncertain, prototypeSums(uncertain)).mask[1]).toBe(0);
  });

  it('class weights: frequency balancing from kept counts, mean-loss ratio as CBMT, bounded', () => {
    expect(Array.from(frequencyWeights([300, 100, 0]))).toEqual([400 / 600, 2, 0]);
    expect(Array.from(frequencyWeights([1e6, 1]))).toEqual([0.5 + 0.5 / 1e6, 5].map((v, i) => (i === 0 ? Math.min(5, Math.max(0.2, v)) : v)));
    const t = handPass();
    const d = denoise(t, prototypeSums(t));
    expect(Array.from(classWeights(t, d, 'none'))).toEqual([1, 1]);
    const ml = classWeights(t, d, 'mean-loss');
    // Class 1's pixels are less confident (higher mean -log p): it gets the smaller weight.
    expect(ml[1]).toBeLessThan(1);
    expect(ml[0]).toBeGreaterThan(1);
  });

  it('ratioDivergence is KL(mean softmax || prior)', () => {
    const logits = tf.tensor2d([[0, 0], [Math.log(3), 0]]); // softmax rows [0.5, 0.5] and [0.75, 0.25]
    const tau = [0.625, 0.375];
    const prior = [0.5, 0.5];
    const want = tau.reduce((s, p, c) => s + p * Math.log(p / prior[c]), 0);
    expect(ratioDivergence(logits, tf.tensor1d(prior)).dataSync()[0]).toBeCloseTo(want, 5);
  });
});

describe('mean teacher on a shifted toy target', () => {
  let unet: UNet;
  let stats: SourceStats;
  let weights: WeightSet;
  const target = makeNestedBoxes(16, TOY_SIZE, 2, 0.3, 1.0);
  const labelled = makeNestedBoxes(4, TOY_SIZE, 9, 0.3, 1.0);

  beforeAll(async () => {
    ({ unet, weights, stats } = await toySourceSetup());
  }, 600_000);

  afterAll(() => unet?.dispose());

  it('the teacher pass marks pixels certain by the std over stochastic passes (none without dropout)', () => {
    unet.setWeights(weights);
    const t = teacherPass(unet, toUnlabeled(target), { passes: 4, dropout: 0, confidence: 0 }, new Rng(1));
    expect(t.certain.every((c) => c === 1)).toBe(true);
    const noisy = teacherPass(unet, toUnlabeled(target), { passes: 8, dropout: 0.5, confidence: 0, uncertainty: 0.01 }, new Rng(1));
    expect(noisy.certain.reduce((a, b) => a + b, 0)).toBeLessThan(noisy.certain.length);
  });

  it('reports its pseudo-label statistics and runs the few-label mode with the supervised loss', () => {
    unet.setWeights(weights);
    const r = adapt('mean-teacher', unet, toUnlabeled(target), stats, { seed: 2, epochs: 2 });
    expect(r.notes[0]).toMatch(/last epoch: [\d.]+% of target pixels certain, [\d.]+% kept after the prototype check; class weights \[/);
    const sourceFree = meanDice(unet, toUnlabeled(target), target.labels, 3);
    unet.setWeights(weights);
    const few = adaptWithLabels(unet, toUnlabeled(target), labelled, stats, { seed: 2, epochs: 6, lr: 0.01 });
    expect(few.notes).toContain('few-label mode: 4 labelled target slices');
    const withLabels = meanDice(unet, toUnlabeled(target), target.labels, 3);
    // The same run with the labelled slices' classes swapped (ring <-> core): the supervised term is really used.
    unet.setWeights(weights);
    const swapped = { ...labelled, labels: labelled.labels.map((c) => (c === 0 ? 0 : 3 - c)) };
    adaptWithLabels(unet, toUnlabeled(target), swapped, stats, { seed: 2, epochs: 6, lr: 0.01 });
    const withWrongLabels = meanDice(unet, toUnlabeled(target), target.labels, 3);
    expect(withLabels).toBeGreaterThan(0.8);
    expect(withLabels).toBeGreaterThan(withWrongLabels + 0.2);
    expect(Number.isFinite(sourceFree)).toBe(true);
  });
});
