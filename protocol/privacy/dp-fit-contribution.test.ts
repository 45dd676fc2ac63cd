import { describe, expect, it } from 'vitest';
import { fitAggregateFromSum, fitContributionLayout, quantize, dequantizeSum, type FitContributionSpec } from '../secagg/index.ts';
import { DP_CONFIG_KEYS, distributedDpFromConfig, dpFitContribution, isPrivacyError, seededNoiseSource } from './index.ts';

const spec: FitContributionSpec = { tensors: [{ name: 'a', length: 3 }, { name: 'b', length: 2 }], metrics: ['trainLoss'], maxExamples: 100 };
const global = new Map([
  ['a', Float32Array.of(1, 2, 3)],
  ['b', Float32Array.of(-1, 0)],
]);

describe('the site side of distributed DP-FedAvg', () => {
  it('clips the update, weights the site 1 (not by its examples), and reads back as global + clipped update', () => {
    const trained = new Map([
      ['a', Float32Array.of(31, 2, 3)], // update (30, 0, 0, 0, 40): norm 50
      ['b', Float32Array.of(-1, 40)],
    ]);
    const c = dpFitContribution(spec, global, trained, { trainLoss: 0.5 }, { clip: 5, siteSigma: 1, delta: 1e-5 }, seededNoiseSource(1));
    expect(c.updateNorm).toBeCloseTo(50, 10);
    expect(c.clipped).toBe(true);
    const agg = fitAggregateFromSum(spec, c.vector);
    expect(agg.totalExamples).toBe(1);
    const a = agg.mean.get('a')!;
    const b = agg.mean.get('b')!;
    expect(a[0]).toBeCloseTo(1 + 3, 4);
    expect(b[1]).toBeCloseTo(4, 4);
    expect(Math.hypot(a[0] - 1, a[1] - 2, a[2] - 3, b[0] + 1, b[1])).toBeLessThanOrEqual(5 + 1e-5);
  });

  it('adds noise to the tensor entries only (the example weight and metrics stay exact)', () => {
    const c = dpFitContribution(spec, global, global, { trainLoss: 0.5 }, { clip: 1, siteSigma: 50, delta: 1e-5 }, seededNoiseSource(2));
    const quant = { clip: 8, scaleBits: 16 };
    const q = quantize(c.vector, quant);
    const before = Uint32Array.from(q);
    c.addNoise(q);
    const layout = fitContributionLayout(spec);
    for (const e of layout.entries) {
      const changed = Array.from({ length: e.length }, (_, i) => q[e.offset + i] !== before[e.offset + i]).some(Boolean);
      expect(changed).toBe(e.name === 'a' || e.name === 'b');
    }
    expect(fitAggregateFromSum(spec, dequantizeSum(q, quant)).totalExamples).toBe(1);
  });

  it('reads its parameters from the fit config and refuses malformed ones', () => {
    expect(distributedDpFromConfig({ round: 1 })).toBeNull();
    expect(distributedDpFromConfig({ [DP_CONFIG_KEYS.clip]: 1, [DP_CONFIG_KEYS.siteSigma]: 3, [DP_CONFIG_KEYS.delta]: 1e-5 })).toEqual({ clip: 1, siteSigma: 3, delta: 1e-5 });
    try {
      distributedDpFromConfig({ [DP_CONFIG_KEYS.clip]: -1, [DP_CONFIG_KEYS.siteSigma]: 3, [DP_CONFIG_KEYS.delta]: 1e-5 });
      expect.unreachable();
    } catch (e) {
      expect(isPrivacyError(e, 'bad-argument')).toBe(true);
    }
  });
});
