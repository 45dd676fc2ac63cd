import { describe, expect, it } from 'vitest';
import {
  adaptiveNoiseSplit,
  clipL2InPlace,
  cryptoNoiseSource,
  discreteGaussianVariance,
  fillDiscreteGaussian,
  fillGaussian,
  l2Norm,
  nextClipNorm,
  seededNoiseSource,
  uniformInt,
} from './index.ts';

/**
 * Statistical tests run on a fixed seed, so they are deterministic; the thresholds are chosen so that a CORRECT
 * sampler would fail them with probability about 1e-5 on a fresh seed (two-sided normal quantile 4.42), i.e. they
 * would catch a wrong variance, not flake.
 */
const Z_1E5 = 4.42;

function moments(x: ArrayLike<number>): { mean: number; variance: number; kurtosis: number } {
  let m = 0;
  for (let i = 0; i < x.length; i++) m += x[i];
  m /= x.length;
  let m2 = 0;
  let m4 = 0;
  for (let i = 0; i < x.length; i++) {
    const d = (x[i] - m) ** 2;
    m2 += d;
    m4 += d * d;
  }
  return { mean: m, variance: m2 / (x.length - 1), kurtosis: m4 / x.length / (m2 / x.length) ** 2 };
}

/** z-score of a sample variance against `want` (var of s^2 is want^2 (kurtosis - 1) / n for large n). */
function varianceZ(x: ArrayLike<number>, want: number): number {
  const { variance, kurtosis } = moments(x);
  return (variance - want) / (want * Math.sqrt((kurtosis - 1) / x.length));
}

describe('noise sources', () => {
  it('seeded streams are reproducible and seed-dependent; crypto streams differ', () => {
    const a = seededNoiseSource(1);
    const b = seededNoiseSource(1);
    const c = seededNoiseSource(2);
    const xa = Array.from({ length: 8 }, () => a.nextUint32());
    expect(Array.from({ length: 8 }, () => b.nextUint32())).toEqual(xa);
    expect(Array.from({ length: 8 }, () => c.nextUint32())).not.toEqual(xa);
    expect(cryptoNoiseSource().nextDouble()).not.toBe(cryptoNoiseSource().nextDouble());
    expect(cryptoNoiseSource().mode).toBe('crypto');
  });

  it('uniform doubles and integers are uniform (chi-square over 16 bins, false alarm ~1e-5)', () => {
    const src = seededNoiseSource('uniform');
    const bins = new Array(16).fill(0);
    const n = 160_000;
    for (let i = 0; i < n; i++) bins[uniformInt(src, 16)]++;
    const chi2 = bins.reduce((s, o) => s + (o - n / 16) ** 2 / (n / 16), 0);
    expect(chi2).toBeLessThan(44.3); // chi-square(15) upper 1e-5 quantile
    for (let i = 0; i < 1000; i++) {
      const u = src.nextDouble();
      expect(u >= 0 && u < 1).toBe(true);
    }
  });
});

describe('Gaussian noise', () => {
  it('has the calibrated variance and zero mean (false-alarm rate ~1e-5 each)', () => {
    const n = 200_000;
    const std = 2.5;
    const x = new Float64Array(n);
    fillGaussian(x, std, seededNoiseSource('gauss'));
    const { mean, kurtosis } = moments(x);
    expect(Math.abs(mean) / (std / Math.sqrt(n))).toBeLessThan(Z_1E5);
    expect(Math.abs(varianceZ(x, std * std))).toBeLessThan(Z_1E5);
    expect(kurtosis).toBeGreaterThan(2.9);
    expect(kurtosis).toBeLessThan(3.1);
  });

  it('a 4% wrong variance would be caught by the same test', () => {
    const x = new Float64Array(200_000);
    fillGaussian(x, 2.5 * 1.02, seededNoiseSource('gauss'));
    expect(Math.abs(varianceZ(x, 2.5 * 2.5))).toBeGreaterThan(Z_1E5);
  });
});

describe('discrete Gaussian (Canonne, Kamath, Steinke 2020)', () => {
  it.each([0.8, 3, 40.5, 1000])('sigma=%s: integer draws with the discrete Gaussian variance (false alarm ~1e-5)', (sigma) => {
    const n = 100_000;
    const x = new Float64Array(n);
    fillDiscreteGaussian(x, sigma, seededNoiseSource(`dg-${sigma}`));
    expect(x.every((v) => Number.isInteger(v))).toBe(true);
    const want = discreteGaussianVariance(sigma);
    const { mean } = moments(x);
    expect(Math.abs(mean) / Math.sqrt(want / n)).toBeLessThan(Z_1E5);
    expect(Math.abs(varianceZ(x, want))).toBeLessThan(Z_1E5);
  });

  it('matches the pmf exp(-x^2 / 2 sigma^2) / Z (chi-square, sigma = 1.5, false alarm ~1e-5)', () => {
    const sigma = 1.5;
    const n = 100_000;
    const x = new Int32Array(n);
    fillDiscreteGaussian(x, sigma, seededNoiseSource('pmf'));
    let z = 0;
    for (let k = -40; k <= 40; k++) z += Math.exp((-k * k) / (2 * sigma * sigma));
    let chi2 = 0;
    for (let k = -5; k <= 5; k++) {
      const expected = (n * Math.exp((-k * k) / (2 * sigma * sigma))) / z;
      const observed = x.filter((v) => v === k).length;
      chi2 += (observed - expected) ** 2 / expected;
    }
    expect(chi2).toBeLessThan(35.6); // chi-square(10) upper 1e-5 quantile (11 cells, tails ignored: conservative)
  });

  it('its variance is sigma^2 up to an exponentially small term for sigma >= 1', () => {
    expect(discreteGaussianVariance(3) / 9).toBeCloseTo(1, 10);
    expect(discreteGaussianVariance(0.3)).toBeLessThan(0.09);
  });
});

describe('clipping', () => {
  it('bounds every contribution by the clipping norm, and leaves small ones alone', () => {
    const src = seededNoiseSource('clip');
    for (let trial = 0; trial < 200; trial++) {
      const a = new Float32Array(1 + (trial % 37));
      const b = new Float64Array(3);
      fillGaussian(a, 10 ** ((trial % 9) - 4), src);
      fillGaussian(b, 10 ** ((trial % 7) - 3), src);
      const before = l2Norm([a, b]);
      const bound = 0.5;
      const r = clipL2InPlace([a, b], bound);
      expect(l2Norm([a, b])).toBeLessThanOrEqual(bound);
      expect(r.norm).toBeCloseTo(before, 12);
      if (before <= bound) expect(r.factor).toBe(1);
      else expect(l2Norm([a, b])).toBeGreaterThan(bound * (1 - 1e-5));
    }
    expect(() => clipL2InPlace([Float32Array.of(NaN)], 1)).toThrow(RangeError);
  });
});

describe('adaptive clipping (Andrew et al. 2021)', () => {
  it('splits the multiplier so update and count compose to z (Theorem 1)', () => {
    const { updateMultiplier, countStddev } = adaptiveNoiseSplit(1, 100);
    expect(countStddev).toBe(5);
    expect(updateMultiplier ** -2 + (2 * countStddev) ** -2).toBeCloseTo(1, 12);
    expect(() => adaptiveNoiseSplit(1, 3)).toThrow(/count stddev/);
    expect(adaptiveNoiseSplit(1, 3, 2).updateMultiplier).toBeCloseTo((1 - 1 / 16) ** -0.5, 12);
  });

  it('converges to the target quantile of the update norms', () => {
    const src = seededNoiseSource('adaptive');
    const cfg = { targetQuantile: 0.5, clipLearningRate: 0.2, countStddev: 0 };
    let clip = 0.1;
    // update norms ~ exp(N(0, 0.3^2)) * 3: median 3.
    for (let round = 0; round < 200; round++) {
      const norms = Array.from({ length: 50 }, () => 3 * Math.exp(0.3 * Math.sqrt(-2 * Math.log(src.nextOpenDouble())) * Math.cos(2 * Math.PI * src.nextDouble())));
      clip = nextClipNorm(clip, norms.filter((n) => n <= clip).length, norms.length, cfg, src);
    }
    expect(clip).toBeGreaterThan(2.4);
    expect(clip).toBeLessThan(3.7);
  });
});
