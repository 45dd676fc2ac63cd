import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-core/dist/register_all_gradients';
import { beforeAll, describe, expect, it } from 'vitest';
import { Rng } from '../../protocol/common/index.ts';
import {
  AdaptError,
  accumulateMoments,
  apportion,
  cholesky,
  emdMomentum,
  emptyMoments,
  gaussianFromMoments,
  hbsLoss,
  sampleGaussian,
  slicedWasserstein,
  symmetrizeMoments,
  transferabilityWeights,
} from './index.ts';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

function gaussianSample(n: number, d: number, rng: Rng, shift = 0): tf.Tensor2D {
  const x = new Float32Array(n * d);
  for (let i = 0; i < x.length; i++) x[i] = rng.normal() + shift;
  return tf.tensor2d(x, [n, d]);
}

describe('slicedWasserstein', () => {
  it('is near 0 for two samples of one distribution and grows with the shift', () => {
    const rng = new Rng(1);
    const a = gaussianSample(800, 4, rng);
    const values = [0, 0.5, 1, 2].map((shift) => {
      const b = gaussianSample(800, 4, rng, shift);
      const v = slicedWasserstein(a, b, 50, rng).dataSync()[0];
      b.dispose();
      return v;
    });
    expect(values[0]).toBeLessThan(0.02);
    for (let i = 1; i < values.length; i++) expect(values[i]).toBeGreaterThan(values[i - 1]);
    // A shift of s along (1,1,1,1) projects to s·(θ·1); E[(θ·1)^2] = 1 for unit θ in R^4, so SWD^2 ≈ s^2.
    expect(values[3]).toBeGreaterThan(2.5);
    expect(values[3]).toBeLessThan(6);
    a.dispose();
  });

  it('is differentiable: its gradient moves one set towards the other', () => {
    const rng = new Rng(2);
    const a = tf.variable(gaussianSample(200, 3, rng, 1));
    const b = gaussianSample(200, 3, rng);
    const before = slicedWasserstein(a, b, 30, new Rng(5)).dataSync()[0];
    const opt = tf.train.sgd(30);
    for (let i = 0; i < 20; i++) opt.minimize(() => slicedWasserstein(a, b, 30, rng), false, [a]);
    const after = slicedWasserstein(a, b, 30, new Rng(5)).dataSync()[0];
    expect(after).toBeLessThan(before * 0.2);
  });

  it('refuses sets of different shapes', () => {
    expect(() => slicedWasserstein(tf.zeros([3, 2]) as tf.Tensor2D, tf.zeros([4, 2]) as tf.Tensor2D, 5, new Rng(1))).toThrow(AdaptError);
  });
});

describe('Gaussians from sufficient statistics', () => {
  it('cholesky of a hand-computed 2x2 matrix', () => {
    // [[4, 2], [2, 3]] = L Lᵀ with L = [[2, 0], [1, sqrt(2)]]
    const l = cholesky(Float64Array.from([4, 2, 2, 3]), 2);
    expect([...l].map((v) => +v.toFixed(12))).toEqual([2, 0, 1, +Math.SQRT2.toFixed(12)]);
    expect(() => cholesky(Float64Array.from([1, 2, 2, 1]), 2)).toThrow(AdaptError);
  });

  it('recovers a known mean and full covariance from samples', () => {
    const dim = 3;
    const mean = Float64Array.from([1, -2, 0.5]);
    const cov = Float64Array.from([2, 0.6, -0.3, 0.6, 1, 0.2, -0.3, 0.2, 0.5]);
    const truth = { mean, cov, chol: cholesky(cov, dim) };
    const n = 20000;
    const x = new Float32Array(n * dim);
    sampleGaussian(truth, dim, n, new Rng(3), x);
    const m = emptyMoments(dim);
    accumulateMoments(m, x, dim, new Uint8Array(n).fill(1));
    symmetrizeMoments(m, dim);
    const g = gaussianFromMoments(m, dim, 0);
    for (let i = 0; i < dim; i++) expect(g.mean[i]).toBeCloseTo(mean[i], 1);
    for (let i = 0; i < dim * dim; i++) expect(Math.abs(g.cov[i] - cov[i])).toBeLessThan(0.06);
  });

  it('apportions sample counts by proportion, skipping classes without a Gaussian', () => {
    expect(apportion([0.5, 0.25, 0.25], 8, [true, true, true])).toEqual([4, 2, 2]);
    expect(apportion([0.5, 0.25, 0.25], 9, [true, false, true])).toEqual([6, 0, 3]);
    expect(apportion([0, 0, 0], 4, [true, true, false])).toEqual([2, 2, 0]);
  });
});

describe('OSUDA closed forms', () => {
  it('exponential momentum decay matches η_0 exp(-t/T)', () => {
    expect(emdMomentum(0, 0.5, 20)).toBe(0.5);
    expect(emdMomentum(20, 0.5, 20)).toBeCloseTo(0.5 / Math.E, 12);
    expect(emdMomentum(40, 0.8, 10)).toBeCloseTo(0.8 * Math.exp(-4), 12);
    expect(emdMomentum(1000, 0.5, 20, 0.01)).toBe(0.01);
  });

  it('transferability weights match a hand computation and average 1', () => {
    // Channel 0: identical normalised means -> d = 0. Channel 1: μ_s/σ_s = 2/1 = 2, μ_t/σ_t = 0/2 = 0 -> d = 2.
    // (1+d)^-1 = [1, 1/3]; α = 2·[1, 1/3] / (4/3) = [1.5, 0.5].
    const a = transferabilityWeights([1, 2], [4, 1], [1, 0], [4, 4], 0);
    expect(a[0]).toBeCloseTo(1.5, 12);
    expect(a[1]).toBeCloseTo(0.5, 12);
    // With the scaling factor |γ| = [1, 0.5]: d = [0, 1], (1+d)^-1 = [1, 0.5], α = 2·[1, 0.5]/1.5 = [4/3, 2/3].
    const s = transferabilityWeights([1, 2], [4, 1], [1, 0], [4, 4], 0, [1, -0.5]);
    expect(s[0]).toBeCloseTo(4 / 3, 12);
    expect(s[1]).toBeCloseTo(2 / 3, 12);
  });

  it('L_HBS is 0 at the source parameters and sums (1+α)·(|Δγ| + |Δβ|) otherwise', () => {
    const src = new Map<string, tf.Tensor>([
      ['l.gamma', tf.tensor1d([1, 2])],
      ['l.beta', tf.tensor1d([0, -1])],
    ]);
    const w = new Map([['l', tf.tensor1d([1.5, 0.5])]]);
    expect(hbsLoss(['l'], src, src, w).dataSync()[0]).toBe(0);
    const cur = new Map<string, tf.Tensor>([
      ['l.gamma', tf.tensor1d([1.2, 2])],
      ['l.beta', tf.tensor1d([0, -0.5])],
    ]);
    // 1.5·(0.2 + 0) + 0.5·(0 + 0.5) = 0.55
    expect(hbsLoss(['l'], cur, src, w).dataSync()[0]).toBeCloseTo(0.55, 6);
  });
});
