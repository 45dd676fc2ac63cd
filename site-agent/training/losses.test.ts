import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-core/dist/register_all_gradients';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { ceDiceLoss, crossEntropyLoss, DICE_SMOOTH, entropyLoss, softDiceLoss } from './losses.ts';
import { createOptimizer } from './optimizer.ts';
import { TrainError } from './train-error.ts';

const val = (t: tf.Scalar): number => {
  const v = t.dataSync()[0];
  t.dispose();
  return v;
};

beforeAll(async () => {
  await tf.setBackend('cpu');
});

describe('losses', () => {
  it('cross-entropy of uniform logits is log K, for index and one-hot labels', () => {
    tf.tidy(() => {
      const logits = tf.zeros([2, 4, 4, 3]);
      const idx = tf.tensor3d(Array.from({ length: 32 }, (_, i) => i % 3), [2, 4, 4], 'int32');
      expect(val(crossEntropyLoss(logits, idx))).toBeCloseTo(Math.log(3), 6);
      expect(val(crossEntropyLoss(logits, tf.oneHot(idx, 3)))).toBeCloseTo(Math.log(3), 6);
    });
  });

  it('cross-entropy and its gradient match a hand computation', () => {
    tf.tidy(() => {
      // Two pixels: logits (2, 0) with label 0, (0, 1) with label 0.
      const logits = tf.tensor2d([2, 0, 0, 1], [2, 2]);
      const labels = tf.tensor1d([0, 0], 'int32');
      const want = (-Math.log(Math.exp(2) / (Math.exp(2) + 1)) - Math.log(1 / (1 + Math.E))) / 2;
      expect(val(crossEntropyLoss(logits, labels))).toBeCloseTo(want, 6);
      // d/dz = (softmax - onehot) / numPixels.
      const g = tf.grad((z: tf.Tensor) => crossEntropyLoss(z, labels))(logits).dataSync();
      const p0 = Math.exp(2) / (Math.exp(2) + 1);
      const p1 = 1 / (1 + Math.E);
      [(p0 - 1) / 2, (1 - p0) / 2, (p1 - 1) / 2, (1 - p1) / 2].forEach((w, i) => expect(g[i]).toBeCloseTo(w, 6));
    });
  });

  it('soft Dice: ~0 for a perfect prediction, ~1 for a fully wrong one, hand value in between', () => {
    tf.tidy(() => {
      const labels = tf.tensor3d([0, 1, 1, 2], [1, 2, 2], 'int32');
      const perfect = tf.reshape(tf.mul(tf.oneHot(tf.reshape(labels, [-1]) as tf.Tensor1D, 3), 40), [1, 2, 2, 3]);
      expect(val(softDiceLoss(perfect, labels, 3))).toBeLessThan(1e-6);
      const wrong = tf.reshape(tf.mul(tf.oneHot(tf.tensor1d([1, 0, 0, 1], 'int32'), 3), 40), [1, 2, 2, 3]);
      expect(val(softDiceLoss(wrong, labels, 3))).toBeGreaterThan(1 - 1e-4);
      // Uniform logits: p = 1/3 everywhere. Class 1: inter 2/3, |p| 4/3, |y| 2; class 2: inter 1/3, |p| 4/3, |y| 1.
      const d1 = (2 * (2 / 3) + DICE_SMOOTH) / (4 / 3 + 2 + DICE_SMOOTH);
      const d2 = (2 * (1 / 3) + DICE_SMOOTH) / (4 / 3 + 1 + DICE_SMOOTH);
      expect(val(softDiceLoss(tf.zeros([1, 2, 2, 3]), labels, 3))).toBeCloseTo(1 - (d1 + d2) / 2, 6);
      const ce = Math.log(3);
      expect(val(ceDiceLoss(tf.zeros([1, 2, 2, 3]), labels, 3))).toBeCloseTo(ce + 1 - (d1 + d2) / 2, 6);
    });
  });

  it('entropy: log K for uniform logits, ~0 for confident ones', () => {
    tf.tidy(() => {
      expect(val(entropyLoss(tf.zeros([2, 3, 3, 4])))).toBeCloseTo(Math.log(4), 6);
      expect(val(entropyLoss(tf.tensor2d([30, 0, 0, 30], [2, 2])))).toBeLessThan(1e-9);
      // p = (e/(1+e), 1/(1+e)) for logits (1, 0).
      const p = Math.E / (1 + Math.E);
      expect(val(entropyLoss(tf.tensor2d([1, 0], [1, 2])))).toBeCloseTo(-(p * Math.log(p) + (1 - p) * Math.log(1 - p)), 6);
    });
  });

  it('rejects labels that fit neither form, and a class-count mismatch', () => {
    tf.tidy(() => {
      expect(() => crossEntropyLoss(tf.zeros([1, 2, 2, 3]), tf.zeros([1, 2, 3], 'int32'))).toThrow(TrainError);
      expect(() => softDiceLoss(tf.zeros([1, 2, 2, 3]), tf.zeros([1, 2, 2], 'int32'), 4)).toThrow(/3 classes, expected 4/);
    });
  });
});

describe('losses on the wasm backend', () => {
  it('give the cpu values (guards the int32-only OneHot of tfjs-backend-wasm)', async () => {
    const compute = (): number[] =>
      tf.tidy(() => {
        const logits = tf.tensor4d([2, 0, 0, 1, 1, 1, -1, 3], [1, 2, 2, 2]);
        const labels = tf.tensor3d([0, 0, 1, 1], [1, 2, 2], 'int32');
        return [crossEntropyLoss(logits, labels), softDiceLoss(logits, labels, 2)].map((t) => t.dataSync()[0]);
      });
    const onCpu = compute();
    setWasmPaths(dirname(createRequire(import.meta.url).resolve('@tensorflow/tfjs-backend-wasm')) + '/');
    try {
      expect(await tf.setBackend('wasm')).toBe(true);
      const onWasm = compute();
      onWasm.forEach((v, i) => expect(v).toBeCloseTo(onCpu[i], 5));
    } finally {
      await tf.setBackend('cpu');
    }
  });
});

describe('createOptimizer', () => {
  it('SGD applies coupled weight decay: w <- w - lr * (g + wd * w)', () => {
    const w = tf.variable(tf.tensor1d([1, -2]));
    const opt = createOptimizer({ kind: 'sgd', lr: 0.1, momentum: 0, weightDecay: 0.5 });
    // f = sum(w * (1, 0)): gradient (1, 0).
    const loss = opt.step(() => tf.sum(tf.mul(w, tf.tensor1d([1, 0]))), [w]);
    expect(loss).toBeCloseTo(1, 6);
    const v = w.dataSync();
    expect(v[0]).toBeCloseTo(1 - 0.1 * (1 + 0.5 * 1), 6);
    expect(v[1]).toBeCloseTo(-2 - 0.1 * (0 + 0.5 * -2), 6);
    opt.dispose();
    w.dispose();
  });

  it('Adam: the first step moves each weight by ~lr against the gradient sign', () => {
    const w = tf.variable(tf.tensor1d([1, 1]));
    const opt = createOptimizer({ kind: 'adam', lr: 0.01 });
    opt.step(() => tf.sum(tf.mul(w, tf.tensor1d([3, -0.5]))), [w]);
    const v = w.dataSync();
    expect(v[0]).toBeCloseTo(0.99, 5);
    expect(v[1]).toBeCloseTo(1.01, 5);
    opt.dispose();
    w.dispose();
  });

  it('rejects bad hyper-parameters', () => {
    expect(() => createOptimizer({ kind: 'sgd', lr: 0 })).toThrow(/lr/);
    expect(() => createOptimizer({ kind: 'sgd', lr: 0.1, momentum: 1 })).toThrow(/momentum/);
    expect(() => createOptimizer({ kind: 'rmsprop' as 'sgd', lr: 0.1 })).toThrow(/unknown optimizer/);
  });
});
