import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-core/dist/register_all_gradients';
import { describe, expect, it } from 'vitest';
import { tensorRole } from '../../protocol/contracts/index.ts';
import { BN_EPSILON } from './batch-norm.ts';
import { groupNormApply, groupNormGroups } from './group-norm.ts';
import { inferUNetConfig } from './infer-config.ts';
import type { UNetConfig } from './unet-config.ts';
import { unetPool } from './unet-pool-fixture.ts';

const GN: UNetConfig = { inChannels: 1, numClasses: 3, baseChannels: 4, depth: 2, normalization: 'group' };

const make = unetPool(GN, 1);

describe('groupNormGroups', () => {
  it("is Opacus's min(32, C), or the largest divisor of C below 32 when 32 does not divide C", () => {
    expect([1, 3, 8, 16, 32].map(groupNormGroups)).toEqual([1, 3, 8, 16, 32]);
    expect([64, 128, 48, 40, 34].map(groupNormGroups)).toEqual([32, 32, 24, 20, 17]);
  });
});

describe('groupNormApply by hand', () => {
  it('normalises each example and group by its own moments (biased variance), then applies gamma and beta', () => {
    // 2 examples, 2x1 pixels, 4 channels in 2 groups of 2.
    const values = [1, 2, 3, 4, 5, 6, 7, 9, -1, 0, 2, 2, 3, 5, 8, 1];
    const gamma = [1, 2, 0.5, -1];
    const beta = [0, 1, -1, 3];
    const y = tf.tidy(() => groupNormApply(tf.tensor4d(values, [2, 2, 1, 4]), tf.tensor1d(gamma), tf.tensor1d(beta), 2).dataSync());
    const expected: number[] = [];
    for (let n = 0; n < 2; n++) {
      const ex = values.slice(8 * n, 8 * n + 8); // pixel-major: [p0c0 p0c1 p0c2 p0c3 p1c0 ...]
      const moments = [0, 1].map((g) => {
        const xs = [ex[2 * g], ex[2 * g + 1], ex[4 + 2 * g], ex[4 + 2 * g + 1]];
        const mean = xs.reduce((a, b) => a + b, 0) / 4;
        return { mean, variance: xs.reduce((a, b) => a + (b - mean) ** 2, 0) / 4 };
      });
      for (let i = 0; i < 8; i++) {
        const c = i % 4;
        const m = moments[Math.floor(c / 2)];
        expected.push((gamma[c] * (ex[i] - m.mean)) / Math.sqrt(m.variance + BN_EPSILON) + beta[c]);
      }
    }
    expect(Array.from(y).map((v, i) => Math.abs(v - expected[i])).every((d) => d < 1e-5)).toBe(true);
  });
});

describe('the GroupNorm U-Net', () => {
  it('has gn affine parameters (role bn-affine) in place of every batch norm, and no statistics', () => {
    const u = make();
    expect(u.bnLayers).toEqual([]);
    expect(u.gnLayers).toEqual(['enc1.gn1', 'enc1.gn2', 'enc2.gn1', 'enc2.gn2', 'bottleneck.gn1', 'bottleneck.gn2', 'dec2.gn1', 'dec2.gn2', 'dec1.gn1', 'dec1.gn2']);
    expect(u.bnStats.size).toBe(0);
    expect(u.paramNames.slice(0, 4)).toEqual(['enc1.conv1.w', 'enc1.gn1.gamma', 'enc1.gn1.beta', 'enc1.conv2.w']);
    for (const name of u.paramNames.filter((n) => n.includes('.gn'))) {
      expect(u.parameterKind(name)).toBe('bn-affine');
      expect(tensorRole(name)).toBe('bn-affine');
    }
    // The BN U-Net of the same shape has 2 more statistic vectors per layer and the same trainable count.
    const bn = make({ ...GN, normalization: 'batch' });
    expect(u.numParams).toBe(bn.numParams);
  });

  it('is read back from its weights alone (a site learns the architecture from the global model)', () => {
    const u = make();
    expect(inferUNetConfig(u.getWeights())).toEqual(GN);
    const bn = make({ ...GN, normalization: undefined });
    expect(inferUNetConfig(bn.getWeights()).normalization).toBeUndefined();
  });

  it("one example's output does not depend on the rest of its batch (unlike batch norm), in both modes", () => {
    const u = make();
    tf.tidy(() => {
      const a = tf.randomNormal([1, 8, 8, 1], 0, 1, 'float32', 3) as tf.Tensor4D;
      const b = tf.randomNormal([2, 8, 8, 1], 2, 3, 'float32', 4) as tf.Tensor4D;
      const alone = u.forward(a, { bn: 'batch' });
      const together = u.forward(tf.concat([a, b], 0), { bn: 'batch' });
      const first = tf.slice(together.logits, [0, 0, 0, 0], [1, 8, 8, 3]);
      expect(tf.max(tf.abs(tf.sub(first, alone.logits))).dataSync()[0]).toBeLessThan(1e-5);
      expect(together.batchStats.size).toBe(0);
      const running = u.forward(a, { bn: 'running' });
      expect(tf.max(tf.abs(tf.sub(running.logits, alone.logits))).dataSync()[0]).toBe(0);
    });
  });

  it('gradients match a central finite difference along a random direction', () => {
    const u = make({ inChannels: 1, numClasses: 2, baseChannels: 2, depth: 1, normalization: 'group' }, 3);
    const vars = [...u.trainable.values()];
    tf.tidy(() => {
      const x = tf.randomNormal([2, 4, 4, 1], 0, 1, 'float32', 5) as tf.Tensor4D;
      const target = tf.randomNormal([2, 4, 4, 2], 0, 1, 'float32', 6);
      const loss = (): tf.Scalar => tf.mean(tf.square(tf.sub(u.forward(x, { bn: 'batch' }).logits, target))) as tf.Scalar;
      const { grads } = tf.variableGrads(loss, vars);
      const dirs = vars.map((v, i) => tf.randomNormal(v.shape, 0, 1, 'float32', 100 + i));
      let analytic = 0;
      vars.forEach((v, i) => (analytic += tf.sum(tf.mul(grads[v.name], dirs[i])).dataSync()[0]));
      const h = 1e-3;
      const orig = vars.map((v) => tf.clone(v));
      const at = (sign: number): number => {
        vars.forEach((v, i) => v.assign(tf.add(orig[i], tf.mul(dirs[i], sign * h))));
        return loss().dataSync()[0];
      };
      const numeric = (at(1) - at(-1)) / (2 * h);
      vars.forEach((v, i) => v.assign(orig[i]));
      expect(Math.abs(analytic)).toBeGreaterThan(1e-3);
      expect(Math.abs(numeric - analytic) / Math.abs(analytic)).toBeLessThan(1e-2);
    });
  });
});
