import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { beforeAll, describe, expect, it } from 'vitest';
import { createUNet } from '../model/index.ts';
import { AdaptError } from './adapt-error.ts';
import { requestedAdapter } from './adapt.ts';
import { negateFirstConv, POLARITY_CHECK } from './input-adapter.ts';
import { predictedProportions, priorDivergence } from './restart-selection.ts';
import { makeNestedBoxes, TOY_CONFIG, TOY_SIZE } from './toy-shift-fixture.ts';
import { toUnlabeled } from './unlabeled-slices.ts';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

describe('priorDivergence', () => {
  it('matches the hand computation of KL(prior || predicted)', () => {
    // 0.5 ln(0.5/0.25) + 0.5 ln(0.5/0.75)
    expect(priorDivergence([0.5, 0.5], [0.25, 0.75], 0)).toBeCloseTo(0.5 * Math.log(2) + 0.5 * Math.log(2 / 3), 12);
    expect(priorDivergence([0.7, 0.2, 0.1], [0.7, 0.2, 0.1], 0)).toBe(0);
  });

  it('is large when a background/foreground swap moves the class mass', () => {
    const prior = [0.8, 0.15, 0.05];
    const right = priorDivergence(prior, [0.78, 0.16, 0.06]);
    const swapped = priorDivergence(prior, [0.15, 0.8, 0.05]);
    const collapsed = priorDivergence(prior, [1, 0, 0]);
    expect(right).toBeLessThan(0.01);
    expect(swapped).toBeGreaterThan(1);
    expect(collapsed).toBeGreaterThan(right);
    expect(Number.isFinite(collapsed)).toBe(true);
  });

  it('refuses mismatched or negative inputs with typed errors', () => {
    expect(() => priorDivergence([0.5, 0.5], [1])).toThrow(expect.objectContaining({ code: 'BAD_SHAPE' }));
    expect(() => priorDivergence([0.5, 0.5], [-0.1, 1.1])).toThrow(AdaptError);
    expect(() => requestedAdapter({ inputPolarities: [] })).toThrow(expect.objectContaining({ code: 'BAD_OPTION' }));
    expect(() => requestedAdapter({ inputPolarities: [1, 0] })).toThrow(expect.objectContaining({ code: 'BAD_OPTION' }));
    expect(() => requestedAdapter({ inputPolarities: [-1, -1] })).toThrow(expect.objectContaining({ code: 'BAD_OPTION' }));
    expect(() => requestedAdapter({ inputPolarities: [1, -1], inputAdapter: {} })).toThrow(expect.objectContaining({ code: 'BAD_OPTION' }));
    expect(requestedAdapter({ inputPolarities: [1, -1] })).toEqual(POLARITY_CHECK);
    expect(requestedAdapter({ inputPolarities: [1] })).toBeNull();
    expect(requestedAdapter({})).toBeNull();
  });
});

describe('negateFirstConv', () => {
  it('makes the network on x identical to the original network on -x', () => {
    const ds = makeNestedBoxes(2, TOY_SIZE, 5);
    const x = tf.tensor4d(ds.images, [2, TOY_SIZE, TOY_SIZE, 1]);
    const negX = tf.neg(x);
    const unet = createUNet(TOY_CONFIG, 11);
    try {
      const onNeg = unet.forward(negX as tf.Tensor4D, { bn: 'batch', collectStats: false }).logits;
      negateFirstConv(unet);
      const flipped = unet.forward(x, { bn: 'batch', collectStats: false }).logits;
      expect(Array.from(flipped.dataSync())).toEqual(Array.from(onNeg.dataSync()));
      onNeg.dispose();
      flipped.dispose();
    } finally {
      unet.dispose();
      x.dispose();
      negX.dispose();
    }
  });

  it('predictedProportions sums to 1 over the classes', () => {
    const unet = createUNet(TOY_CONFIG, 12);
    try {
      const q = predictedProportions(unet, toUnlabeled(makeNestedBoxes(3, TOY_SIZE, 6)), 2);
      expect(q.length).toBe(3);
      expect(q.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 12);
    } finally {
      unet.dispose();
    }
  });
});
