import { describe, expect, it } from 'vitest';
import { packVectors, unpackVectors } from './pack.ts';
import { quantizationErrorBound } from './quantize.ts';
import { makeSimulatedSites, runSecAggRound } from './run-round.ts';
import { weightedContribution, weightedMeanFromSums } from './weighted-mean.ts';

describe('FedAvg weighted mean through secure aggregation', () => {
  it('equals sum n_k w_k / sum n_k within the quantization error', async () => {
    const counts = [100, 40, 260, 7];
    const maxExamples = 1000;
    const updates = counts.map((_, i) => ({
      'enc1.conv1.w': Float32Array.from({ length: 6 }, (_, j) => Math.sin(i * 3 + j) * 0.5),
      'enc1.bn1.gamma': Float32Array.of(1 + i * 0.01, 1 - i * 0.02),
    }));
    const packed = updates.map((u, i) => packVectors(weightedContribution(u, counts[i], maxExamples)));
    const quant = { clip: 1, scaleBits: 28 };
    const sites = makeSimulatedSites(counts.length, (i) => packed[i].vector);
    const r = await runSecAggRound(sites, { vectorLength: packed[0].layout.totalLength, quant });
    const { mean, totalExamples } = weightedMeanFromSums(unpackVectors(r.sum, packed[0].layout), maxExamples);
    const total = counts.reduce((a, b) => a + b, 0);
    expect(totalExamples).toBeCloseTo(total, 3);
    const tol = (quantizationErrorBound(quant, counts.length) * 2) / (total / maxExamples) + 1e-6;
    for (const name of Object.keys(updates[0]) as (keyof (typeof updates)[0])[]) {
      for (let j = 0; j < updates[0][name].length; j++) {
        const want = updates.reduce((a, u, i) => a + u[name][j] * counts[i], 0) / total;
        expect(Math.abs(mean[name][j] - want)).toBeLessThan(tol);
      }
    }
  });

  it('refuses counts above the public bound (they would leave the clip range)', () => {
    expect(() => weightedContribution({ a: Float32Array.of(1) }, 2000, 1000)).toThrow(/maxExamples/);
  });
});
