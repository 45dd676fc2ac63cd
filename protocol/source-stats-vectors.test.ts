import { describe, expect, it } from 'vitest';
import { ProtocolError } from './errors.ts';
import type { SourceStats } from './contracts/index.ts';
import { sourceStatsFromVectors, sourceStatsToVectors } from './source-stats-vectors.ts';

function site(k: number): SourceStats {
  const m = (c: number) => ({ count: c, sum: [c * 0.5, -c], sumOuter: [c, 0.25 * c, 0.25 * c, 2 * c] });
  return {
    kind: 'fedsfda-source-stats',
    version: 1,
    numClasses: 2,
    latentDim: 2,
    confidence: 0.97,
    numSites: 1,
    bn: { 'enc1.bn1': { count: 100 * k, sum: [k, 2 * k, 3 * k], sumSq: [k * k, 4, 9] } },
    classes: [
      { labelCount: 80 * k, confident: m(60 * k), labelled: m(80 * k) },
      { labelCount: 20 * k, confident: m(5 * k), labelled: m(20 * k) },
    ],
  };
}

describe('source statistics as summable vectors', () => {
  it('the sum of two sites decodes to the pooled package (counts exact, moments within float32)', () => {
    const scale = 1 / 1000;
    const a = sourceStatsToVectors(site(1), scale);
    const b = sourceStatsToVectors(site(2), scale);
    const sums = Object.fromEntries(Object.keys(a).map((k) => [k, a[k].map((x, i) => x + b[k][i])]));
    const pooled = sourceStatsFromVectors(sums, { numClasses: 2, latentDim: 2, confidence: 0.97, numSites: 2, scale });
    expect(pooled.bn['enc1.bn1'].count).toBe(300);
    expect(pooled.classes.map((c) => c.labelCount)).toEqual([240, 60]);
    expect(pooled.classes[0].confident.count).toBe(180);
    expect(pooled.classes[1].labelled.sum[0]).toBeCloseTo(30, 4);
    expect(pooled.classes[1].labelled.sumOuter[3]).toBeCloseTo(120, 3);
    expect(pooled.bn['enc1.bn1'].sumSq[0]).toBeCloseTo(5, 4);
    expect(pooled.numSites).toBe(2);
  });

  it('refuses a missing or mis-sized vector with a typed error naming it', () => {
    const v = sourceStatsToVectors(site(1), 1);
    delete v['class/1/labelled/sumOuter'];
    expect(() => sourceStatsFromVectors(v, { numClasses: 2, latentDim: 2, confidence: 0.97, numSites: 1, scale: 1 })).toThrow(/class\/1\/labelled\/sumOuter/);
    const w = sourceStatsToVectors(site(1), 1);
    w['class/0/confident/sum'] = new Float32Array(3);
    expect(() => sourceStatsFromVectors(w, { numClasses: 2, latentDim: 2, confidence: 0.97, numSites: 1, scale: 1 })).toThrow(ProtocolError);
    expect(() => sourceStatsToVectors(site(1), 0)).toThrow(ProtocolError);
  });
});
