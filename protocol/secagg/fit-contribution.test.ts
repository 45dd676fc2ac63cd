import { describe, expect, it } from 'vitest';
import { SecAggError } from './errors.ts';
import { fitAggregateFromSum, fitContribution, fitContributionLayout, type FitContributionSpec } from './fit-contribution.ts';

const spec: FitContributionSpec = { tensors: [{ name: 'w', length: 2 }, { name: 'b', length: 1 }], metrics: ['trainLoss', 'acc'], maxExamples: 100 };

describe('fit contribution', () => {
  it('sums of contributions give the example-weighted means, the total, and metric means over reporting sites', () => {
    const sites = [
      { n: 30, w: [1, 2], b: 0.5, m: { trainLoss: 0.4, acc: 0.9 } },
      { n: 10, w: [-1, 0], b: 1.5, m: { trainLoss: 0.8, acc: Number.NaN } },
    ];
    const layout = fitContributionLayout(spec);
    const sum = new Float32Array(layout.totalLength);
    for (const s of sites) {
      const v = fitContribution(spec, new Map([['w', Float32Array.from(s.w)], ['b', Float32Array.of(s.b)]]), s.n, s.m);
      v.forEach((x, i) => (sum[i] += x));
    }
    const agg = fitAggregateFromSum(spec, sum);
    expect(agg.totalExamples).toBe(40);
    expect(agg.mean.get('w')![0]).toBeCloseTo((30 * 1 + 10 * -1) / 40, 6);
    expect(agg.mean.get('w')![1]).toBeCloseTo((30 * 2) / 40, 6);
    expect(agg.mean.get('b')![0]).toBeCloseTo((30 * 0.5 + 10 * 1.5) / 40, 6);
    expect(agg.metrics.trainLoss).toBeCloseTo((30 * 0.4 + 10 * 0.8) / 40, 6);
    expect(agg.metrics.acc).toBeCloseTo(0.9, 6); // the site without a finite acc does not dilute the mean
  });

  it('refuses missing tensors, wrong lengths, reserved names and counts above the public bound', () => {
    const ok = new Map([['w', new Float32Array(2)], ['b', new Float32Array(1)]]);
    expect(() => fitContribution(spec, new Map([['w', new Float32Array(2)]]), 1, {})).toThrow(/lacks tensor "b"/);
    expect(() => fitContribution(spec, new Map([['w', new Float32Array(3)], ['b', new Float32Array(1)]]), 1, {})).toThrow(/3 values/);
    expect(() => fitContribution(spec, ok, 101, {})).toThrow(SecAggError);
    expect(() => fitContributionLayout({ ...spec, tensors: [{ name: '__examples', length: 1 }] })).toThrow(/reserved/);
  });
});
