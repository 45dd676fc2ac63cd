import { describe, expect, it } from 'vitest';
import { makeSimulatedSites, runSecAggRound } from '../secagg/index.ts';
import {
  PrivacyLedger,
  addDiscreteGaussianShare,
  checkNoiseHeadroom,
  ddgRdp,
  ddgTau,
  discreteGaussianVariance,
  planDistributedDp,
  sampledGaussianEpsilon,
  seededNoiseSource,
} from './index.ts';

/** Two-sided normal quantile for a false-alarm rate of 1e-5; the seeds are fixed, so these cannot flake. */
const Z_1E5 = 4.42;

function sampleVariance(x: Float32Array, mean: (i: number) => number): number {
  let s = 0;
  for (let i = 0; i < x.length; i++) s += (x[i] - mean(i)) ** 2;
  return s / x.length;
}

describe('distributed discrete Gaussian through secure aggregation (Kairouz, Liu, Steinke 2021)', () => {
  const scaleBits = 10;
  const quant = { clip: 8, scaleBits };
  const d = 20_000;
  const n = 5;
  const inputs = (i: number) => Float32Array.from({ length: d }, (_, k) => ((k % 7) - 3) * 0.001 * (i + 1));
  const exactSum = (k: number) => Array.from({ length: n }, (_, i) => Math.round(((k % 7) - 3) * 0.001 * (i + 1) * 1024) / 1024).reduce((a, b) => a + b, 0);

  it('the unmasked sum carries the same noise variance as central noise at the same multiplier (false alarm 1e-5)', async () => {
    const params = planDistributedDp({ clip: 1, scaleBits, dim: d, noiseMultiplier: 1, sites: n });
    const sites = makeSimulatedSites(n, inputs).map((s, i) => ({ ...s, addNoise: (q: Uint32Array) => addDiscreteGaussianShare(q, params.siteSigma, seededNoiseSource(`ddg-${i}`)) }));
    const r = await runSecAggRound(sites, { vectorLength: d, quant });
    expect(r.included).toHaveLength(n);
    // Central DP-FedAvg with the same z adds N(0, (z * Delta_2)^2) to the sum, Delta_2 the same sensitivity in model units.
    const centralStd = 1 * params.l2Sensitivity * 2 ** -scaleBits;
    const got = sampleVariance(r.sum, exactSum);
    const want = (n * discreteGaussianVariance(params.siteSigma)) * 2 ** (-2 * scaleBits);
    expect(want / centralStd ** 2).toBeCloseTo(1, 9); // the discrete Gaussian's variance is sigma^2 to ~1e-300 here
    expect(Math.abs(got - want) / (want * Math.sqrt(2 / d))).toBeLessThan(Z_1E5);
  });

  it('a site that drops before masking takes its share with it: calibrating for the threshold keeps the target', async () => {
    const params = planDistributedDp({ clip: 1, scaleBits, dim: d, noiseMultiplier: 1, sites: n, minSurvivors: 4 });
    expect(params.extraVarianceFraction).toBeCloseTo(0.25, 12); // all 5 survive: 25% more variance than the target
    const sites = makeSimulatedSites(n, inputs).map((s, i) => ({ ...s, addNoise: (q: Uint32Array) => addDiscreteGaussianShare(q, params.siteSigma, seededNoiseSource(`drop-${i}`)) }));
    const r = await runSecAggRound(sites, { vectorLength: d, quant, threshold: 3, dropouts: { 'collect-masked-vectors': [sites[2].siteId] } });
    expect(r.included).toHaveLength(4);
    const exactSurvivors = (k: number) => exactSum(k) - Math.round(((k % 7) - 3) * 0.001 * 3 * 1024) / 1024;
    const got = sampleVariance(r.sum, exactSurvivors);
    const target = params.varianceMinSurvivors * 2 ** (-2 * scaleBits);
    expect(Math.abs(got - target) / (target * Math.sqrt(2 / d))).toBeLessThan(Z_1E5);
  });

  it('accounts as the Gaussian mechanism when tau vanishes, and worse when sigma is tiny', () => {
    const p = planDistributedDp({ clip: 1, scaleBits, dim: d, noiseMultiplier: 1.3, sites: n });
    expect(ddgTau(p.siteSigma, n)).toBe(0);
    for (const a of [1.5, 4, 32]) expect(ddgRdp({ ...p, survivors: n, dim: d }, a)).toBeCloseTo(a / (2 * 1.3 * 1.3), 10);
    // fewer survivors than planned: less noise, more privacy loss
    expect(ddgRdp({ ...p, survivors: n - 1, dim: d }, 4)).toBeGreaterThan(ddgRdp({ ...p, survivors: n, dim: d }, 4));
    // sigma ~ 0.3: the sum is far from a discrete Gaussian and tau makes the bound larger than the Gaussian one
    expect(ddgRdp({ l2Sensitivity: 1, l1Sensitivity: 1, siteSigma: 0.3, survivors: 3, dim: 10 }, 2)).toBeGreaterThan(2 / (2 * 3 * 0.09));
    const ledger = new PrivacyLedger();
    for (let r = 0; r < 10; r++) ledger.record({ mechanism: 'distributed-discrete-gaussian', label: 'dp-fedavg', l2Sensitivity: p.l2Sensitivity, l1Sensitivity: p.l1Sensitivity, siteSigma: p.siteSigma, survivors: n, dim: d, steps: 1 });
    expect(ledger.events).toHaveLength(1);
    expect(ledger.spent(1e-5).epsilon).toBeCloseTo(sampledGaussianEpsilon({ samplingRate: 1, noiseMultiplier: 1.3, steps: 10, delta: 1e-5 }).epsilon, 8);
  });

  it('refuses a configuration whose noised sum could wrap around 2^32', () => {
    expect(() => checkNoiseHeadroom(2 ** 28, 5, 1e8)).toThrow(/wrap/);
    expect(() => checkNoiseHeadroom(2 ** 20, 5, 1e3)).not.toThrow();
  });
});
