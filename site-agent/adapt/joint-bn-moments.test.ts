import { describe, expect, it } from 'vitest';
import { AdaptError } from './adapt-error.ts';
import { mixBnMomentSums, type BnMomentSums } from './joint-bn-moments.ts';

/** One layer's moment sums over the given per-channel samples (every sample one slice, as a batch of 1 would give). */
const sumsOf = (samples: number[][]): BnMomentSums => {
  const ch = samples[0].length;
  const sum = new Float64Array(ch);
  const sumSq = new Float64Array(ch);
  for (const s of samples) s.forEach((v, k) => ((sum[k] += v), (sumSq[k] += v * v)));
  return { n: samples.length, layers: new Map([['enc1.bn', { sum, sumSq }]]) };
};

/** Mean and variance per channel from sums. */
const moments = (s: BnMomentSums): { mean: number[]; variance: number[] } => {
  const m = s.layers.get('enc1.bn')!;
  const mean = Array.from(m.sum, (v) => v / s.n);
  return { mean, variance: Array.from(m.sumSq, (v, k) => v / s.n - mean[k] ** 2) };
};

describe('mixBnMomentSums', () => {
  const own = [[1, -2], [3, 0]];
  const others = [[5, 1], [7, 3], [9, 2], [2, 2]];
  const ownSums = sumsOf(own);
  const pooledSums = sumsOf([...own, ...others]);

  it('gives the moments of the mixture α · own + (1 - α) · pooled (checked against the weighted samples)', () => {
    // Arrange: the brute-force mixture, every own sample weighted α / |own| and every pooled one (1 - α) / |pooled|.
    const alpha = 0.25;
    const pooled = [...own, ...others];
    const weighted = [...own.map((x) => ({ x, w: alpha / own.length })), ...pooled.map((x) => ({ x, w: (1 - alpha) / pooled.length }))];
    const mean = [0, 1].map((k) => weighted.reduce((a, s) => a + s.w * s.x[k], 0));
    const variance = [0, 1].map((k) => weighted.reduce((a, s) => a + s.w * (s.x[k] - mean[k]) ** 2, 0));
    // Act
    const got = moments(mixBnMomentSums(ownSums, pooledSums, alpha));
    // Assert
    got.mean.forEach((v, k) => expect(v).toBeCloseTo(mean[k], 12));
    got.variance.forEach((v, k) => expect(v).toBeCloseTo(variance[k], 12));
  });

  it('is the pooled statistics at α = 0 and the own at α = 1', () => {
    // Act
    const atZero = moments(mixBnMomentSums(ownSums, pooledSums, 0));
    const atOne = moments(mixBnMomentSums(ownSums, pooledSums, 1));
    // Assert
    const p = moments(pooledSums);
    const o = moments(ownSums);
    atZero.mean.forEach((v, k) => expect(v).toBeCloseTo(p.mean[k], 12));
    atZero.variance.forEach((v, k) => expect(v).toBeCloseTo(p.variance[k], 12));
    atOne.mean.forEach((v, k) => expect(v).toBeCloseTo(o.mean[k], 12));
    atOne.variance.forEach((v, k) => expect(v).toBeCloseTo(o.variance[k], 12));
  });

  it('refuses a weight outside [0, 1], empty sums and mismatched layers by name', () => {
    // Arrange
    const other: BnMomentSums = { n: 2, layers: new Map([['enc2.bn', { sum: new Float64Array(2), sumSq: new Float64Array(2) }]]) };
    // Act / Assert
    expect(() => mixBnMomentSums(ownSums, pooledSums, 1.5)).toThrow(/ownWeight/);
    expect(() => mixBnMomentSums(ownSums, pooledSums, Number.NaN)).toThrow(AdaptError);
    expect(() => mixBnMomentSums({ ...ownSums, n: 0 }, pooledSums, 0.5)).toThrow(/no slices/);
    expect(() => mixBnMomentSums(other, pooledSums, 0.5)).toThrow(/enc1\.bn/);
  });
});
