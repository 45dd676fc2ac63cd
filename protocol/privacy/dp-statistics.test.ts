import { describe, expect, it } from 'vitest';
import { SOURCE_STATS_KIND, SOURCE_STATS_VERSION, type SourceStats } from '../contracts/index.ts';
import {
  addCentralStatisticsNoise,
  addStatisticsNoiseShare,
  classHistogramUnitVector,
  CLASS_HISTOGRAM_UNIT_BOUND,
  composeRunPrivacy,
  l2Norm,
  planStatisticsNoise,
  postProcessDpSourceStats,
  PrivacyLedger,
  privacyUnits,
  sampledGaussianEpsilon,
  seededNoiseSource,
  sourceStatsUnitBound,
  sourceStatsUnitVector,
  statisticsDpConfigSchema,
  statisticsDpFromConfig,
  statisticsDpToConfig,
  statisticsEvent,
  statisticsNoiseMultiplier,
  statisticsScale,
  statisticsUnitBound,
  sumClippedUnits,
  symmetricEigen,
  unscaleSourceStatsSums,
  type PrivacyEvent,
} from './index.ts';

/** A deterministic PRNG for test inputs (not for noise). */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

/**
 * One unit's package as computeSourceStats builds it, from per-pixel features already clipped to `b` and per-layer
 * batch-norm inputs (arbitrary size: the normalisation clamps them).
 */
function unitStats(r: () => number, o: { pixels: number; k: number; d: number; layers: number[]; b: number; bnScale: number; oneClass?: boolean }): SourceStats {
  const { k, d } = o;
  const empty = () => ({ count: 0, sum: new Array<number>(d).fill(0), sumOuter: new Array<number>(d * d).fill(0) });
  const classes = Array.from({ length: k }, () => ({ labelCount: 0, confident: empty(), labelled: empty() }));
  for (let p = 0; p < o.pixels; p++) {
    const c = o.oneClass ? 0 : Math.floor(r() * k);
    const z = Array.from({ length: d }, () => r() * 2 - 1);
    const n = Math.hypot(...z);
    const zc = z.map((x) => (x / n) * o.b * (o.oneClass ? 1 : r())); // norm <= b (exactly b in the extreme case)
    classes[c].labelCount++;
    const parts = r() < 0.6 || o.oneClass ? [classes[c].labelled, classes[c].confident] : [classes[c].labelled];
    for (const m of parts) {
      m.count++;
      for (let i = 0; i < d; i++) {
        m.sum[i] += zc[i];
        for (let j = 0; j < d; j++) m.sumOuter[i * d + j] += zc[i] * zc[j];
      }
    }
  }
  const bn: SourceStats['bn'] = {};
  o.layers.forEach((ch, l) => {
    const sum = Array.from({ length: ch }, () => (r() * 2 - 1) * o.bnScale * o.pixels);
    bn[`layer${l}`] = { count: o.pixels, sum, sumSq: sum.map((s) => (s * s) / o.pixels + r() * o.bnScale ** 2 * o.pixels) };
  });
  return { kind: SOURCE_STATS_KIND, version: SOURCE_STATS_VERSION, numClasses: k, latentDim: d, confidence: 0.97, numSites: 1, bn, classes };
}

const clips = { featureClip: 2, activationClip: 3 };

describe('DP statistics: sensitivity and clipping', () => {
  it('a unit vector stays within Delta = sqrt(3 + 7), even for extreme units (all pixels one class, features at the bound, huge activations)', () => {
    const r = rng(1);
    const layers = [8, 16, 16, 8];
    const bound = sourceStatsUnitBound(layers.length);
    let largest = 0;
    for (let t = 0; t < 40; t++) {
      const extreme = t % 4 === 0;
      const s = unitStats(r, { pixels: 50 + Math.floor(r() * 200), k: 4, d: 6, layers, b: clips.featureClip, bnScale: extreme ? 1e3 : 2, oneClass: extreme });
      const v = sourceStatsUnitVector(s, s.classes.reduce((a, c) => a + c.labelCount, 0), clips);
      largest = Math.max(largest, l2Norm(Object.values(v)));
    }
    expect(largest).toBeLessThanOrEqual(bound);
    expect(largest).toBeGreaterThan(0.5 * bound); // the bound is not loose by orders of magnitude
    expect(statisticsUnitBound(Object.keys(sourceStatsUnitVector(unitStats(r, { pixels: 10, k: 4, d: 6, layers, b: 2, bnScale: 1 }), 10, clips)))).toBe(bound);
  });

  it('a class-histogram unit has norm <= 1 and the histogram bound is sqrt(5)', () => {
    expect(l2Norm(Object.values(classHistogramUnitVector([100, 0, 0])))).toBeCloseTo(1, 12);
    expect(l2Norm(Object.values(classHistogramUnitVector([5, 3, 2])))).toBeLessThan(1);
    expect(statisticsUnitBound(['hist/pixels', 'hist/p', 'hist/p2', 'hist/sites'])).toBe(CLASS_HISTOGRAM_UNIT_BOUND);
    expect(CLASS_HISTOGRAM_UNIT_BOUND).toBeCloseTo(Math.sqrt(5), 15);
  });

  it('clipping bounds every unit: adding any one unit moves the scaled sum by at most Delta s = 1/U', () => {
    const r = rng(2);
    const bound = 1.5;
    const maxUnits = 20;
    const s = statisticsScale(bound, maxUnits);
    const units = Array.from({ length: 10 }, (_, i) => ({ a: Float64Array.from({ length: 5 }, () => (r() - 0.5) * (i % 3 === 0 ? 100 : 1)), b: Float64Array.from({ length: 3 }, () => r()) }));
    const all = sumClippedUnits(units, bound, s, maxUnits);
    expect(all.clippedUnits).toBeGreaterThan(0);
    for (let drop = 0; drop < units.length; drop++) {
      const without = sumClippedUnits(units.filter((_, i) => i !== drop), bound, s, maxUnits);
      const diff = Object.keys(all.values).map((n) => Float64Array.from(all.values[n], (x, i) => x - without.values[n][i]));
      expect(l2Norm(diff)).toBeLessThanOrEqual(bound * s * (1 + 1e-5));
    }
    for (const v of Object.values(all.values)) for (const x of v) expect(Math.abs(x)).toBeLessThanOrEqual(1);
    expect(() => sumClippedUnits(units, bound, s, 9)).toThrow(/maxUnitsPerSite/);
  });

  it('groups slices into cases (or keeps each slice) as privacy units', () => {
    expect(privacyUnits(['a', 'a', 'b', 'a', 'c'], 'case')).toEqual([[0, 1, 3], [2], [4]]);
    expect(privacyUnits(['a', 'a'], 'slice')).toEqual([[0], [1]]);
  });

  it('round-trips the DP request through a statistics config and refuses malformed values', () => {
    const req = { unit: 'case' as const, maxUnits: 64, featureClip: 2, activationClip: 3, unitPixels: 4096, delta: 1e-5, siteSigma: 12.5 };
    expect(statisticsDpFromConfig(statisticsDpToConfig(req))).toEqual(req);
    expect(statisticsDpFromConfig({ scale: 1 })).toBeNull();
    expect(() => statisticsDpFromConfig({ ...statisticsDpToConfig(req), dpFeatureClip: -1 })).toThrow(/dpFeatureClip/);
    expect(() => statisticsDpConfigSchema.parse({ noiseMultiplier: 1, targetEpsilon: 1 })).toThrow();
  });
});

describe('DP statistics: noise scale', () => {
  it('central std = z Delta_s; distributed sigma = z (Delta_s 2^s + sqrt d) / sqrt(minSurvivors)', () => {
    const central = planStatisticsNoise({ mode: 'central', noiseMultiplier: 1.7, scaledSensitivity: 0.01, dim: 100 });
    expect(central.centralStd).toBeCloseTo(0.017, 15);
    const dist = planStatisticsNoise({ mode: 'distributed', noiseMultiplier: 1.7, scaledSensitivity: 0.01, dim: 100, scaleBits: 16, sites: 5, minSurvivors: 4 });
    expect(dist.distributed!.siteSigma).toBeCloseTo((1.7 * (0.01 * 2 ** 16 + 10)) / 2, 9);
    expect(dist.distributed!.varianceAllSurvive).toBeCloseTo(5 * dist.distributed!.siteSigma ** 2, 6);
  });

  // Chi-square bounds: for n = 20,000 draws the sample variance / sigma^2 lies within 1 +- 5 sqrt(2/n) = 1 +- 0.05
  // except with probability < 1e-6 (5 standard deviations), so a false alarm is below 1e-6 per assertion.
  it('central noise has the calibrated variance; the sum of n discrete Gaussian shares has n sigma^2', () => {
    const n = 20_000;
    const std = 0.37;
    const sums = { a: new Float32Array(n / 2), 'hist/sites': new Float32Array(3), b: new Float32Array(n / 2) };
    addCentralStatisticsNoise(sums, (name) => name !== 'hist/sites', std, seededNoiseSource('central-var'));
    const all = [...sums.a, ...sums.b];
    const v = all.reduce((s, x) => s + x * x, 0) / all.length;
    expect(Math.abs(v / std ** 2 - 1)).toBeLessThan(0.05);
    expect([...sums['hist/sites']]).toEqual([0, 0, 0]); // the public site count is never noised

    const sigma = 3.2;
    const sites = 4;
    const q = new Uint32Array(n);
    for (let s = 0; s < sites; s++) addStatisticsNoiseShare(q, [{ offset: 0, length: n }], sigma, seededNoiseSource(`share-${s}`));
    const signed = Array.from(q, (x) => (x | 0));
    const vs = signed.reduce((s, x) => s + x * x, 0) / n;
    expect(Math.abs(vs / (sites * sigma * sigma) - 1)).toBeLessThan(0.05);
  });
});

describe('DP statistics: ledger composition', () => {
  it('training and statistics compose in RDP: for Gaussian releases the total equals one Gaussian of 1/z^2 = sum 1/z_i^2', () => {
    const delta = 1e-5;
    const training: PrivacyEvent[] = [{ mechanism: 'sampled-gaussian', label: 'dp-fedavg', samplingRate: 1, noiseMultiplier: 5, steps: 12 }];
    const zs = statisticsNoiseMultiplier({ targetEpsilon: 2, delta }, 2);
    const plan = planStatisticsNoise({ mode: 'central', noiseMultiplier: zs, scaledSensitivity: 1, dim: 10 });
    const stats = [statisticsEvent('stats/source-stats', plan, 3), statisticsEvent('stats/class-histogram', plan, 3)];
    const r = composeRunPrivacy(training, stats, delta);
    expect(r.statistics!.epsilon).toBeLessThanOrEqual(2);
    expect(r.statistics!.epsilon).toBeGreaterThan(1.99);
    // q = 1: RDP alpha / (2 z^2) per release, so 12 rounds at 5 and 2 releases at zs are one release at z_eff.
    const zEff = 1 / Math.sqrt(12 / 25 + 2 / zs ** 2);
    expect(r.epsilon).toBeCloseTo(sampledGaussianEpsilon({ samplingRate: 1, noiseMultiplier: zEff, steps: 1, delta }).epsilon, 9);
    expect(r.epsilon).toBeLessThan(r.training!.epsilon + r.statistics!.epsilon);
    expect(r.epsilon).toBeGreaterThan(Math.max(r.training!.epsilon, r.statistics!.epsilon));
    expect(r.statistics!.releases).toEqual(['stats/source-stats', 'stats/class-histogram']);
  });

  it('a distributed statistics release is accounted as the distributed discrete Gaussian of the survivors', () => {
    const plan = planStatisticsNoise({ mode: 'distributed', noiseMultiplier: 2, scaledSensitivity: 1 / 64, dim: 500, scaleBits: 20, sites: 3 });
    const e = statisticsEvent('stats/source-stats', plan, 3);
    expect(e.mechanism).toBe('distributed-discrete-gaussian');
    const eps = new PrivacyLedger().clone();
    eps.record(e);
    // sigma of a few thousand integer units: tau underflows, so it is the Gaussian mechanism at z Delta_int / (Delta_int) = z.
    expect(eps.spent(1e-5).epsilon).toBeCloseTo(sampledGaussianEpsilon({ samplingRate: 1, noiseMultiplier: 2, steps: 1, delta: 1e-5 }).epsilon, 6);
    // Fewer survivors than planned carry less noise: more epsilon.
    const fewer = new PrivacyLedger();
    fewer.record(statisticsEvent('stats/source-stats', plan, 2));
    expect(fewer.spent(1e-5).epsilon).toBeGreaterThan(eps.spent(1e-5).epsilon);
  });
});

describe('DP statistics: post-processing', () => {
  it('symmetricEigen reconstructs a symmetric matrix', () => {
    const r = rng(3);
    const d = 6;
    const a = new Float64Array(d * d);
    for (let i = 0; i < d; i++) for (let j = i; j < d; j++) a[i * d + j] = a[j * d + i] = r() * 2 - 1;
    const { values, vectors } = symmetricEigen(a, d);
    for (let i = 0; i < d; i++) {
      for (let j = 0; j < d; j++) {
        let s = 0;
        for (let k = 0; k < d; k++) s += vectors[i * d + k] * values[k] * vectors[j * d + k];
        expect(s).toBeCloseTo(a[i * d + j], 9);
      }
    }
  });

  it('noised moments become a valid Gaussian (PSD covariance), tiny classes are dropped, BN variances stay positive', () => {
    const r = rng(4);
    const s = unitStats(r, { pixels: 400, k: 3, d: 4, layers: [4], b: 2, bnScale: 1 });
    const noisy: SourceStats = {
      ...s,
      bn: { layer0: { count: 400, sum: s.bn.layer0.sum, sumSq: s.bn.layer0.sum.map(() => -5) } },
      classes: s.classes.map((c, k) => ({
        labelCount: c.labelCount,
        confident: k === 2 ? { ...c.confident, count: 1 } : c.confident,
        labelled: { ...c.labelled, sumOuter: c.labelled.sumOuter.map((x, i) => x + (i % 5 === 0 ? -300 : 40 * (r() - 0.5))) },
      })),
    };
    const p = postProcessDpSourceStats(noisy);
    expect(p.classes[2].confident.count).toBe(0);
    for (const c of p.classes) {
      const m = c.labelled;
      const d = 4;
      const cov = new Float64Array(d * d);
      for (let i = 0; i < d; i++) for (let j = 0; j < d; j++) cov[i * d + j] = m.sumOuter[i * d + j] / m.count - (m.sum[i] / m.count) * (m.sum[j] / m.count);
      expect(Math.min(...symmetricEigen(cov, d).values)).toBeGreaterThan(0);
    }
    const bn = p.bn.layer0;
    bn.sum.forEach((x, k) => expect(bn.sumSq[k] / bn.count - (x / bn.count) ** 2).toBeGreaterThan(0));
  });

  it('unscaling multiplies each name back by its public unit', () => {
    const real = unscaleSourceStatsSums({ 'bn/l/count': Float32Array.of(0.5), 'bn/l/sum': Float32Array.of(0.5, 0.5, 0.5, 0.5), 'class/0/labelled/sumOuter': Float32Array.of(0.25), 'class/0/labelCount': Float32Array.of(0.125) }, { scale: 0.5, unitPixels: 100, clips });
    expect(real['bn/l/sum'][0]).toBeCloseTo((0.5 * 100 * 3 * 2) / 0.5, 3);
    expect(real['class/0/labelled/sumOuter'][0]).toBeCloseTo((0.25 * 100 * 4) / 0.5, 3);
    expect(real['class/0/labelCount'][0]).toBeCloseTo(25, 5);
  });
});
