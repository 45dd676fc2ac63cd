import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-core/dist/register_all_gradients';
import { describe, expect, it } from 'vitest';
import type { WeightSet } from '../../protocol/named-tensor.ts';
import { BN_EPSILON, batchNormApply, channelMoments } from './batch-norm.ts';
import { ModelError } from './model-error.ts';
import { createUNet, type BatchNormStats } from './unet.ts';
import type { UNetConfig } from './unet-config.ts';
import { unetPool } from './unet-pool-fixture.ts';

const TINY: UNetConfig = { inChannels: 1, numClasses: 3, baseChannels: 4, depth: 2 };

/** The depth-2 name list, written out by hand: these strings are the wire keys and must never drift. */
const DEPTH2_NAMES = (() => {
  const block = (p: string): string[] =>
    [1, 2].flatMap((i) => [`${p}.conv${i}.w`, ...['gamma', 'beta', 'mean', 'var'].map((s) => `${p}.bn${i}.${s}`)]);
  return [
    ...block('enc1'),
    ...block('enc2'),
    ...block('bottleneck'),
    'up2.w',
    'up2.b',
    ...block('dec2'),
    'up1.w',
    'up1.b',
    ...block('dec1'),
    'head.w',
    'head.b',
  ];
})();

const make = unetPool(TINY, 1);

function expectModelError(f: () => unknown, code: string, text?: RegExp): void {
  let err: unknown;
  try {
    f();
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(ModelError);
  expect((err as ModelError).code).toBe(code);
  if (text) expect((err as ModelError).message).toMatch(text);
}

describe('createUNet: parameters', () => {
  it('names are stable, complete and in wire order', () => {
    const u = make();
    expect(u.paramNames).toEqual(DEPTH2_NAMES);
    expect(u.getWeights().map((t) => t.name)).toEqual(DEPTH2_NAMES);
    expect(new Set([...u.trainable.keys(), ...u.bnStats.keys()])).toEqual(new Set(DEPTH2_NAMES));
    expect([...u.bnStats.keys()].every((n) => n.endsWith('.mean') || n.endsWith('.var'))).toBe(true);
    expect(u.bnLayers).toEqual(
      ['enc1', 'enc2', 'bottleneck', 'dec2', 'dec1'].flatMap((p) => [`${p}.bn1`, `${p}.bn2`]),
    );
  });

  it('shapes and numParams match a hand count', () => {
    const u = make();
    const shape = (n: string): number[] => [...(u.trainable.get(n) ?? u.bnStats.get(n))!.shape];
    expect(shape('enc1.conv1.w')).toEqual([3, 3, 1, 4]);
    expect(shape('enc2.conv1.w')).toEqual([3, 3, 4, 8]);
    expect(shape('bottleneck.conv2.w')).toEqual([3, 3, 16, 16]);
    expect(shape('up2.w')).toEqual([2, 2, 8, 16]);
    expect(shape('dec2.conv1.w')).toEqual([3, 3, 16, 8]);
    expect(shape('dec1.bn2.var')).toEqual([4]);
    expect(shape('head.w')).toEqual([1, 1, 4, 3]);
    // enc1 196 + enc2 896 + bottleneck 3520 + up2 520 + dec2 1760 + up1 132 + dec1 448 + head 15 (BN stats excluded).
    expect(u.numParams).toBe(7487);
  });

  it('parameterKind tells conv, BN affine, BN statistics and head apart', () => {
    const u = make();
    expect(u.parameterKind('enc1.conv1.w')).toBe('conv');
    expect(u.parameterKind('up1.b')).toBe('conv');
    expect(u.parameterKind('dec2.bn1.gamma')).toBe('bn-affine');
    expect(u.parameterKind('dec2.bn1.beta')).toBe('bn-affine');
    expect(u.parameterKind('dec2.bn1.mean')).toBe('bn-stat');
    expect(u.parameterKind('dec2.bn1.var')).toBe('bn-stat');
    expect(u.parameterKind('head.w')).toBe('head');
    expectModelError(() => u.parameterKind('enc9.conv1.w'), 'UNKNOWN_PARAMETER', /enc9/);
  });

  it('initialisation is seeded: same seed same weights, other seed other weights', () => {
    const a = make(TINY, 7).getWeights();
    const b = make(TINY, 7).getWeights();
    const c = make(TINY, 8).getWeights();
    expect(a).toEqual(b);
    expect(a[0].data).not.toEqual(c[0].data);
    // He init: std of enc2.conv2.w (fan_in 72) close to sqrt(2/72) = 0.167.
    const w = a.find((t) => t.name === 'enc2.conv2.w')!.data;
    const std = Math.sqrt(w.reduce((s, v) => s + v * v, 0) / w.length);
    expect(std).toBeGreaterThan(0.13);
    expect(std).toBeLessThan(0.2);
  });

  it('rejects an invalid config with a typed error naming the field', () => {
    expectModelError(() => createUNet({ ...TINY, depth: 0 }, 1), 'INVALID_CONFIG', /depth/);
    expectModelError(() => createUNet({ ...TINY, numClasses: 1 }, 1), 'INVALID_CONFIG', /numClasses/);
    expectModelError(() => createUNet({ ...TINY, inputSize: [30, 32] }, 1), 'INVALID_CONFIG', /inputSize/);
  });
});

describe('forward', () => {
  it('returns logits, latent and per-layer batch statistics of the right shapes', () => {
    const u = make();
    tf.tidy(() => {
      const x = tf.randomNormal([2, 16, 16, 1], 0, 1, 'float32', 3) as tf.Tensor4D;
      const out = u.forward(x, { bn: 'batch' });
      expect(out.logits.shape).toEqual([2, 16, 16, 3]);
      expect(out.latent.shape).toEqual([2, 16, 16, 4]);
      expect([...out.batchStats.keys()]).toEqual(u.bnLayers);
      expect(out.batchStats.get('bottleneck.bn1')!.mean.shape).toEqual([16]);
      expect(out.batchStats.get('dec1.bn2')!.variance.shape).toEqual([4]);
      // In batch mode every BN output has zero mean per channel, so the enc1.bn1 input moments are those of conv1(x).
      const conv = tf.conv2d(x, u.trainable.get('enc1.conv1.w') as tf.Tensor4D, 1, 'same');
      const m = tf.moments(conv, [0, 1, 2]);
      expect(out.batchStats.get('enc1.bn1')!.mean.arraySync()).toEqual(
        (m.mean.arraySync() as number[]).map((v) => expect.closeTo(v, 5)),
      );
      // classify(latent) is the head: equal to logits, on [N,H,W,C] and on flat [M,C] samples.
      const again = u.classify(out.latent);
      expect(tf.max(tf.abs(tf.sub(again, out.logits))).dataSync()[0]).toBeLessThan(1e-6);
      const flat = u.classify(tf.reshape(out.latent, [-1, 4]));
      expect(flat.shape).toEqual([512, 3]);
      expect(tf.max(tf.abs(tf.sub(flat, tf.reshape(out.logits, [-1, 3])))).dataSync()[0]).toBeLessThan(1e-6);
      expect(u.forward(x, { bn: 'running', collectStats: false }).batchStats.size).toBe(0);
    });
  });

  it("'running' and 'batch' differ, and coincide once the running stats equal this batch's moments", () => {
    const u = make(TINY, 5);
    const x = tf.randomNormal([2, 16, 16, 1], 2, 3, 'float32', 4) as tf.Tensor4D;
    const batch = u.forward(x, { bn: 'batch' });
    const running = u.forward(x, { bn: 'running' });
    const diff = (a: tf.Tensor, b: tf.Tensor): number => tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]);
    expect(diff(batch.logits, running.logits)).toBeGreaterThan(1e-2);
    // momentum 1 copies the batch moments; layer by layer the running pass then sees exactly the batch pass's inputs.
    u.updateRunningStats(batch.batchStats, 1);
    const copied = u.forward(x, { bn: 'running' });
    expect(diff(batch.logits, copied.logits)).toBeLessThan(1e-4);
    for (const r of [batch, running, copied]) {
      tf.dispose([r.logits, r.latent, ...[...r.batchStats.values()].flatMap((s) => [s.mean, s.variance])]);
    }
    x.dispose();
  });

  it('rejects bad inputs with typed errors', () => {
    const u = make({ ...TINY, inputSize: [16, 16] });
    const bad = (shape: number[], dtype: 'float32' | 'int32' = 'float32'): tf.Tensor4D => tf.zeros(shape as [number, number, number, number], dtype);
    tf.tidy(() => {
      expectModelError(() => u.forward(bad([1, 16, 16, 2]), { bn: 'batch' }), 'INVALID_INPUT', /2 channels/);
      expectModelError(() => u.forward(bad([1, 16, 16, 1], 'int32'), { bn: 'batch' }), 'INVALID_INPUT', /float32/);
      expectModelError(() => u.forward(bad([1, 32, 32, 1]), { bn: 'batch' }), 'INVALID_INPUT', /16x16/);
      expectModelError(() => u.forward(tf.zeros([16, 16, 1]) as unknown as tf.Tensor4D, { bn: 'batch' }), 'INVALID_INPUT', /rank-4/);
      expectModelError(() => u.classify(tf.zeros([5, 3])), 'INVALID_INPUT', /\[\.\.\., 4\]/);
    });
    const v = make();
    tf.tidy(() => expectModelError(() => v.forward(bad([1, 18, 16, 1]), { bn: 'batch' }), 'INVALID_INPUT', /divisible/));
  });
});

describe('gradients', () => {
  it("match a central finite difference along a random direction, with BN in 'batch' mode", () => {
    const u = make({ inChannels: 1, numClasses: 2, baseChannels: 2, depth: 1 }, 3);
    const vars = [...u.trainable.values()];
    tf.tidy(() => {
      const x = tf.randomNormal([2, 4, 4, 1], 0, 1, 'float32', 5) as tf.Tensor4D;
      const target = tf.randomNormal([2, 4, 4, 2], 0, 1, 'float32', 6);
      // A smooth loss of the logits; batch-mode BN makes it depend on the weights through the batch moments too.
      const loss = (): tf.Scalar => tf.mean(tf.square(tf.sub(u.forward(x, { bn: 'batch' }).logits, target))) as tf.Scalar;
      const { grads } = tf.variableGrads(loss, vars);
      const dirs = vars.map((v, i) => tf.randomNormal(v.shape, 0, 1, 'float32', 100 + i));
      let analytic = 0;
      vars.forEach((v, i) => (analytic += tf.sum(tf.mul(grads[v.name], dirs[i])).dataSync()[0]));
      // Small enough that no ReLU / max-pool switch flips (1e-2 already crosses kinks here), large enough for float32.
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

describe('batch norm by hand', () => {
  it('normalises with the given statistics', () => {
    tf.tidy(() => {
      // Two pixels, two channels: ch0 = {1, 3} (mean 2, var 1), ch1 = {2, 6} (mean 4, var 4).
      const x = tf.tensor4d([1, 2, 3, 6], [2, 1, 1, 2]);
      const { mean, variance } = channelMoments(x);
      expect(mean.arraySync()).toEqual([2, 4]);
      expect(variance.arraySync()).toEqual([1, 4]);
      const gamma = tf.tensor1d([2, 1]);
      const beta = tf.tensor1d([0.5, 0]);
      const y = batchNormApply(x, mean, variance, gamma, beta).dataSync();
      const s0 = 2 / Math.sqrt(1 + BN_EPSILON);
      const s1 = 1 / Math.sqrt(4 + BN_EPSILON);
      const want = [-1 * s0 + 0.5, -2 * s1, 1 * s0 + 0.5, 2 * s1];
      want.forEach((w, i) => expect(y[i]).toBeCloseTo(w, 5));
      // Running statistics mean 0, var 1: y = gamma * x / sqrt(1 + eps) + beta.
      const r = batchNormApply(x, tf.tensor1d([0, 0]), tf.tensor1d([1, 1]), gamma, beta).dataSync();
      const k = 1 / Math.sqrt(1 + BN_EPSILON);
      [2 * k + 0.5, 2 * k, 6 * k + 0.5, 6 * k].forEach((w, i) => expect(r[i]).toBeCloseTo(w, 5));
    });
  });

  it('updateRunningStats: running = (1 - m) running + m batch', () => {
    const u = make();
    const stats = new Map<string, BatchNormStats>([
      ['enc1.bn1', { mean: tf.tensor1d([1, 2, 3, 4]), variance: tf.tensor1d([2, 2, 0.5, 9]) }],
    ]);
    u.updateRunningStats(stats, 0.1);
    u.updateRunningStats(stats, 0.1);
    // Two steps from mean 0 / var 1: mean = 0.19 * b, var = 0.81 + 0.19 * v.
    const mean = u.bnStats.get('enc1.bn1.mean')!.dataSync();
    const variance = u.bnStats.get('enc1.bn1.var')!.dataSync();
    [1, 2, 3, 4].forEach((b, i) => expect(mean[i]).toBeCloseTo(0.19 * b, 6));
    [2, 2, 0.5, 9].forEach((v, i) => expect(variance[i]).toBeCloseTo(0.81 + 0.19 * v, 6));
    // Untouched layers stay at their initial values.
    expect(Array.from(u.bnStats.get('enc1.bn2.var')!.dataSync())).toEqual([1, 1, 1, 1]);
    expectModelError(() => u.updateRunningStats(stats, 1.5), 'INVALID_INPUT', /momentum/);
    const wrong = new Map([['nope.bn1', stats.get('enc1.bn1')!]]);
    expectModelError(() => u.updateRunningStats(wrong, 0.1), 'UNKNOWN_PARAMETER', /nope\.bn1/);
    const short = new Map([['enc1.bn1', { mean: tf.tensor1d([1]), variance: tf.tensor1d([1]) }]]);
    expectModelError(() => u.updateRunningStats(short, 0.1), 'WEIGHT_MISMATCH', /enc1\.bn1/);
    tf.dispose([...stats.values(), ...short.values()].flatMap((s) => [s.mean, s.variance]));
  });
});

describe('getWeights / setWeights', () => {
  it('round-trips exactly and returns copies', () => {
    const a = make(TINY, 1);
    const b = make(TINY, 2);
    const wa = a.getWeights();
    b.setWeights(wa);
    expect(b.getWeights()).toEqual(wa);
    const original = wa[0].data[0];
    wa[0].data[0] = 123;
    expect(a.getWeights()[0].data[0]).toBe(original);
    tf.tidy(() => {
      const x = tf.randomNormal([2, 16, 16, 1], 0, 1, 'float32', 9) as tf.Tensor4D;
      const la = a.forward(x, { bn: 'running' }).logits.dataSync();
      const lb = b.forward(x, { bn: 'running' }).logits.dataSync();
      expect(lb).toEqual(la);
    });
  });

  it('partial sets only the given parameters (FedBN keeps BN local)', () => {
    const a = make(TINY, 1);
    const b = make(TINY, 2);
    const notBn = a.getWeights().filter((t) => !a.parameterKind(t.name).startsWith('bn'));
    b.setWeights(notBn, { partial: true });
    const wb = new Map(b.getWeights().map((t) => [t.name, t.data]));
    for (const t of notBn) expect(wb.get(t.name)).toEqual(t.data);
    expectModelError(() => b.setWeights(notBn), 'WEIGHT_MISMATCH', /enc1\.bn1\.gamma' is missing/);
  });

  it('rejects mismatches with a typed error naming the first offender, and changes nothing', () => {
    const u = make();
    const before = u.getWeights();
    const mutate = (f: (ws: WeightSet) => WeightSet): WeightSet => f(u.getWeights());
    expectModelError(
      () => u.setWeights(mutate((ws) => ws.map((t) => (t.name === 'enc2.conv1.w' ? { ...t, shape: [3, 3, 8, 4] } : t)))),
      'WEIGHT_MISMATCH',
      /'enc2\.conv1\.w' has shape \[3, 3, 8, 4\], expected \[3, 3, 4, 8\]/,
    );
    expectModelError(
      () => u.setWeights(mutate((ws) => ws.map((t) => (t.name === 'head.b' ? { ...t, data: new Float32Array(2) } : t)))),
      'WEIGHT_MISMATCH',
      /head\.b/,
    );
    expectModelError(() => u.setWeights(mutate((ws) => ws.filter((t) => t.name !== 'up1.w'))), 'WEIGHT_MISMATCH', /up1\.w/);
    expectModelError(
      () => u.setWeights(mutate((ws) => [...ws, { name: 'extra.w', shape: [1], data: new Float32Array(1) }])),
      'UNKNOWN_PARAMETER',
      /extra\.w/,
    );
    expectModelError(
      () =>
        u.setWeights(
          mutate((ws) => {
            ws[ws.length - 1].data[0] = Number.NaN;
            return ws;
          }),
        ),
      'NON_FINITE_WEIGHT',
      /head\.b/,
    );
    expectModelError(
      () => u.setWeights(mutate((ws) => ws.map((t) => (t.name === 'dec1.bn1.var' ? { ...t, data: t.data.map(() => -1) } : t)))),
      'WEIGHT_MISMATCH',
      /negative variance/,
    );
    expect(u.getWeights()).toEqual(before);
  });

  it('dispose releases every variable and later calls fail with DISPOSED', () => {
    const start = tf.memory().numTensors;
    const u = createUNet(TINY, 3);
    expect(tf.memory().numTensors - start).toBe(DEPTH2_NAMES.length);
    u.dispose();
    expect(tf.memory().numTensors).toBe(start);
    expectModelError(() => u.getWeights(), 'DISPOSED');
  });
});
