import { describe, expect, it } from 'vitest';
import {
  DpGradientAccumulator,
  fillGaussian,
  isPrivacyError,
  l2Norm,
  planDpSgd,
  poissonSample,
  sampledGaussianEpsilon,
  seededNoiseSource,
} from './index.ts';

/** Two-sided normal quantile for a false-alarm rate of 1e-5 (statistical tests run on fixed seeds: deterministic). */
const Z_1E5 = 4.42;

/**
 * A hand-computed tiny model: linear regression f(x) = w.x + b with squared loss (f(x) - y)^2, whose per-example
 * gradient is 2 r (x, 1) with residual r = f(x) - y. At w = (1, -1), b = 0.5:
 *   x = (1, 2),   y = 0    r = -0.5  g = (-1, -2, -1)    ||g|| = sqrt(6)      clipped to C = 1: g / sqrt(6)
 *   x = (0.1, 0), y = 0.5  r = 0.1   g = (0.02, 0, 0.2)  ||g|| = sqrt(0.0404) kept as is
 *   x = (3, -1),  y = 0    r = 4.5   g = (27, -9, 9)     ||g|| = 9 sqrt(11)   clipped: (3, -1, 1) / sqrt(11)
 * (the weights w and the bias b are two parameter tensors, clipped TOGETHER).
 */
const EXAMPLES = [
  { x: [1, 2], y: 0 },
  { x: [0.1, 0], y: 0.5 },
  { x: [3, -1], y: 0 },
];
function linearGradient(e: { x: number[]; y: number }): Float64Array[] {
  const r = e.x[0] * 1 + e.x[1] * -1 + 0.5 - e.y;
  return [Float64Array.from(e.x, (v) => 2 * r * v), Float64Array.of(2 * r)];
}

describe('DP-SGD clipping (hand-computed linear model)', () => {
  it('clips each example to norm C over all its parameter tensors together, and sums', () => {
    const acc = new DpGradientAccumulator([2, 1], 1);
    const norms = EXAMPLES.map((e) => acc.add(linearGradient(e)));
    expect(norms[0]).toBeCloseTo(Math.sqrt(6), 12);
    expect(norms[1]).toBeCloseTo(Math.sqrt(0.0404), 12);
    expect(norms[2]).toBeCloseTo(9 * Math.sqrt(11), 10);
    expect(acc.clipped).toBe(2);
    const s6 = Math.sqrt(6);
    const s11 = Math.sqrt(11);
    const [w, b] = acc.clippedSum();
    expect(w[0]).toBeCloseTo(-1 / s6 + 0.02 + 3 / s11, 12);
    expect(w[1]).toBeCloseTo(-2 / s6 + 0 - 1 / s11, 12);
    expect(b[0]).toBeCloseTo(-1 / s6 + 0.2 + 1 / s11, 12);
  });

  it('bounds what any one example can move the sum: adding an example with a huge gradient moves it by exactly C', () => {
    const base = new DpGradientAccumulator([2, 1], 0.5);
    const withOutlier = new DpGradientAccumulator([2, 1], 0.5);
    for (const e of EXAMPLES) {
      base.add(linearGradient(e));
      withOutlier.add(linearGradient(e));
    }
    withOutlier.add([Float64Array.of(3e8, -4e8), Float64Array.of(1e3)]);
    const a = base.clippedSum();
    const b = withOutlier.clippedSum();
    const diff = a.map((t, k) => Float64Array.from(t, (v, i) => b[k][i] - v));
    expect(l2Norm(diff)).toBeCloseTo(0.5, 12);
    expect(l2Norm(diff)).toBeLessThanOrEqual(0.5 * (1 + 1e-15));
  });

  it('releases (clipped sum + N(0, sigma^2 C^2)) / L: exactly the noise of the same seeded stream, once', () => {
    const acc = new DpGradientAccumulator([2, 1], 1);
    for (const e of EXAMPLES) acc.add(linearGradient(e));
    const sum = acc.clippedSum();
    const out = acc.release(1.7, 4, seededNoiseSource('dp-sgd-release'));
    const replay = seededNoiseSource('dp-sgd-release');
    sum.forEach((s, k) => {
      const noise = new Float64Array(s.length);
      fillGaussian(noise, 1.7 * 1, replay);
      for (let i = 0; i < s.length; i++) expect(out[k][i]).toBeCloseTo((s[i] + noise[i]) / 4, 12);
    });
    expect(() => acc.release(1.7, 4, seededNoiseSource(1))).toThrow(/already released/);
    expect(() => acc.add(linearGradient(EXAMPLES[0]))).toThrow(/already released/);
  });

  it('refuses a gradient that does not match the layout or is not finite', () => {
    const acc = new DpGradientAccumulator([2, 1], 1);
    expect(() => acc.add([Float64Array.of(1, 2)])).toThrow(/layout/);
    expect(() => acc.add([Float64Array.of(1, NaN), Float64Array.of(0)])).toThrow(/non-finite/);
    expect(() => new DpGradientAccumulator([2], 0)).toThrow(/clipping norm/);
  });
});

describe('DP-SGD noise', () => {
  it('has the calibrated variance (sigma C / L)^2 and mean 0 per coordinate (false alarm 1e-5 each)', () => {
    const d = 200_000;
    const sigma = 1.3;
    const clip = 0.7;
    const l = 4;
    const out = new DpGradientAccumulator([d], clip).release(sigma, l, seededNoiseSource('dp-sgd-variance'))[0];
    const want = ((sigma * clip) / l) ** 2;
    let mean = 0;
    for (const v of out) mean += v;
    mean /= d;
    let s2 = 0;
    for (const v of out) s2 += (v - mean) ** 2;
    s2 /= d - 1;
    // For Gaussian data var(s^2) = 2 want^2 / (d - 1).
    expect(Math.abs(s2 - want) / (want * Math.sqrt(2 / (d - 1)))).toBeLessThan(Z_1E5);
    expect(Math.abs(mean) / Math.sqrt(want / d)).toBeLessThan(Z_1E5);
  });
});

describe('Poisson sampling', () => {
  it('draws each index independently with probability q (batch size Binomial(n, q), false alarm 1e-5)', () => {
    const src = seededNoiseSource('poisson');
    const n = 64;
    const q = 1 / 8;
    const sizes: number[] = [];
    const hits = new Array(n).fill(0);
    for (let t = 0; t < 4000; t++) {
      const s = poissonSample(n, q, src);
      sizes.push(s.length);
      for (const i of s) hits[i]++;
      expect(new Set(s).size).toBe(s.length);
    }
    const mean = sizes.reduce((a, b) => a + b, 0) / sizes.length;
    expect(Math.abs(mean - n * q) / Math.sqrt((n * q * (1 - q)) / sizes.length)).toBeLessThan(Z_1E5);
    // Every index is drawn about 4000 q = 500 times; the extreme of 64 binomials stays well inside 6 sigma.
    for (const h of hits) expect(Math.abs(h - 4000 * q) / Math.sqrt(4000 * q * (1 - q))).toBeLessThan(6);
  });
});

describe('planDpSgd', () => {
  it("samples like Opacus's DPDataLoader (q = 1 / ceil(N / B)) and accounts every step as a sampled Gaussian", () => {
    const plan = planDpSgd({ clip: 1, noiseMultiplier: 1.1 }, { examples: 45, batchSize: 8, plannedEpochs: 12 });
    expect(plan.stepsPerEpoch).toBe(6);
    expect(plan.samplingRate).toBeCloseTo(1 / 6, 15);
    expect(plan.expectedBatchSize).toBeCloseTo(7.5, 12);
    expect(plan.plannedSteps).toBe(72);
    expect(plan.plannedEpsilon).toBe(sampledGaussianEpsilon({ samplingRate: 1 / 6, noiseMultiplier: 1.1, steps: 72, delta: 1e-5 }).epsilon);
  });

  it('calibrates sigma for a target epsilon over the planned epochs (never above the target)', () => {
    const plan = planDpSgd({ clip: 1, targetEpsilon: 8, delta: 1e-5 }, { examples: 48, batchSize: 8, plannedEpochs: 12 });
    expect(plan.plannedEpsilon).toBeLessThanOrEqual(8);
    expect(plan.plannedEpsilon).toBeGreaterThan(8 * (1 - 1e-6));
    const check = sampledGaussianEpsilon({ samplingRate: plan.samplingRate, noiseMultiplier: plan.noiseMultiplier, steps: plan.plannedSteps, delta: 1e-5 });
    expect(check.epsilon).toBe(plan.plannedEpsilon);
  });

  it('refuses a plan over its budget before any step (budget-exceeded), and bad settings', () => {
    let err: unknown;
    try {
      planDpSgd({ clip: 1, noiseMultiplier: 0.6, maxEpsilon: 3 }, { examples: 48, batchSize: 8, plannedEpochs: 12 });
    } catch (e) {
      err = e;
    }
    expect(isPrivacyError(err, 'budget-exceeded')).toBe(true);
    expect(() => planDpSgd({ clip: 1 } as never, { examples: 48, batchSize: 8, plannedEpochs: 1 })).toThrow(/exactly one/);
    expect(() => planDpSgd({ clip: 1, noiseMultiplier: 1 }, { examples: 0, batchSize: 8, plannedEpochs: 1 })).toThrow(/at least one training example/);
  });
});
