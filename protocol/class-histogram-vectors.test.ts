import { describe, expect, it } from 'vitest';
import { classHistogramFromVectors, classHistogramReportInClear, classHistogramToVectors } from './class-histogram-vectors.ts';
import { ProtocolError } from './errors.ts';
import { packVectors, unpackVectors } from './secagg/pack.ts';
import { makeSimulatedSites, runSecAggRound } from './secagg/run-round.ts';
import { maxSafeScaleBits } from './secagg/quantize.ts';

const SITES = [
  [9000, 500, 500],
  [7000, 2900, 100],
  [9800, 100, 100],
  [8000, 1000, 1000],
];
const SCALE = 1 / 50_000;

function plainSums(perSite: number[][]): Record<string, Float32Array> {
  const vs = perSite.map((h) => classHistogramToVectors(h, SCALE));
  const out: Record<string, Float32Array> = {};
  for (const name of Object.keys(vs[0])) out[name] = Float32Array.from(vs[0][name], (_, i) => vs.reduce((a, v) => a + v[name][i], 0));
  return out;
}

describe('non-IID report from summed class histograms', () => {
  it('equals the report computed in the clear (pooled counts, mean fraction, between-site spread)', () => {
    const fromSums = classHistogramFromVectors(plainSums(SITES), { numSites: SITES.length, scale: SCALE });
    const clear = classHistogramReportInClear(SITES);
    expect(fromSums.pooledPixels).toEqual([33800, 4500, 1700]);
    expect(fromSums.pooledPixels).toEqual(clear.pooledPixels);
    fromSums.meanSiteFraction.forEach((m, k) => expect(m).toBeCloseTo(clear.meanSiteFraction[k], 6));
    fromSums.betweenSiteStd.forEach((sd, k) => expect(sd).toBeCloseTo(clear.betweenSiteStd[k], 4));
    expect(fromSums.heterogeneity).toBeCloseTo(clear.heterogeneity, 6);
    // Hand check of class 1: fractions 0.05, 0.29, 0.01, 0.10 -> mean 0.1125, variance 0.01151875.
    expect(clear.meanSiteFraction[1]).toBeCloseTo(0.1125, 12);
    expect(clear.betweenSiteStd[1] ** 2).toBeCloseTo(0.01151875, 12);
    expect(clear.betweenSiteCv[1]).toBeCloseTo(Math.sqrt(0.01151875) / 0.1125, 12);
    fromSums.betweenSiteCv.forEach((cv, k) => expect(cv).toBeCloseTo(clear.betweenSiteCv[k], 3));
  });

  it('is zero heterogeneity for identical label proportions', () => {
    const iid = [[800, 100, 100], [1600, 200, 200], [400, 50, 50]];
    expect(classHistogramReportInClear(iid).heterogeneity).toBeCloseTo(0, 12);
    expect(classHistogramFromVectors(plainSums(iid), { numSites: 3, scale: SCALE }).heterogeneity).toBeLessThan(1e-7);
  });

  it('survives secure aggregation at clip 1 (fixed point, masks) within 1e-6', async () => {
    const packed = SITES.map((h) => packVectors(classHistogramToVectors(h, SCALE)));
    const sites = makeSimulatedSites(SITES.length, (i) => packed[i].vector);
    const report = await runSecAggRound(sites, {
      vectorLength: packed[0].vector.length,
      quant: { clip: 1, scaleBits: maxSafeScaleBits(1, SITES.length) },
    });
    const fromSecure = classHistogramFromVectors(unpackVectors(report.sum, packed[0].layout), { numSites: SITES.length, scale: SCALE });
    const clear = classHistogramReportInClear(SITES);
    expect(fromSecure.pooledPixels).toEqual(clear.pooledPixels);
    expect(Math.abs(fromSecure.heterogeneity - clear.heterogeneity)).toBeLessThan(1e-6);
  });

  it('refuses empty or out-of-bound histograms and sums over an unexpected number of sites', () => {
    expect(() => classHistogramToVectors([0, 0], SCALE)).toThrow(ProtocolError);
    expect(() => classHistogramToVectors([1, -1], SCALE)).toThrow(ProtocolError);
    expect(() => classHistogramToVectors([60_000], SCALE)).toThrow(/public bound/);
    expect(() => classHistogramFromVectors(plainSums(SITES), { numSites: 3, scale: SCALE })).toThrow(/covers 4 sites/);
  });
});
