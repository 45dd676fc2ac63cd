import { describe, expect, it } from 'vitest';
import { AggregationError, checkUpdateMatches, weightedAverageWeightSets, weightedMean, weightedMetricMeans } from './aggregate.ts';
import type { WeightSet } from '../../protocol/named-tensor.ts';

function code(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(AggregationError);
    return (e as AggregationError).code;
  }
  return 'no error';
}

const ws = (w: number[], b: number): WeightSet => [
  { name: 'w', shape: [w.length], data: new Float32Array(w) },
  { name: 'bn.gamma', shape: [1], data: new Float32Array([b]) },
];

describe('weightedMean', () => {
  it('matches a hand-computed weighted mean', () => {
    // (1*[1,2] + 3*[5,6]) / 4 = [4, 5]
    expect(Array.from(weightedMean([new Float32Array([1, 2]), new Float32Array([5, 6])], [1, 3]))).toEqual([4, 5]);
    // (10*0.1 + 30*0.3 + 60*0.6) / 100 = 0.46
    expect(weightedMean([new Float32Array([0.1]), new Float32Array([0.3]), new Float32Array([0.6])], [10, 30, 60])[0]).toBeCloseTo(0.46, 6);
  });

  it('rejects zero, negative and non-finite weights, empty input and length mismatches', () => {
    const a = new Float32Array([1]);
    expect(code(() => weightedMean([a, a], [1, 0]))).toBe('zero_weight');
    expect(code(() => weightedMean([a], [-1]))).toBe('bad_weight');
    expect(code(() => weightedMean([a], [Number.NaN]))).toBe('bad_weight');
    expect(code(() => weightedMean([], []))).toBe('empty');
    expect(code(() => weightedMean([a, new Float32Array(2)], [1, 1]))).toBe('shape_mismatch');
    expect(code(() => weightedMean([a], [1, 2]))).toBe('bad_weight');
  });
});

describe('weightedAverageWeightSets (FedAvg)', () => {
  const ref = ws([0, 0], 1);
  it('averages by example count, in the reference order, whatever order the update lists tensors in', () => {
    const u1 = { weights: ws([2, 4], 2), numExamples: 1 };
    const u2 = { weights: [...ws([6, 8], 4)].reverse(), numExamples: 3 };
    const out = weightedAverageWeightSets([u1, u2], ref);
    expect(out.map((t) => t.name)).toEqual(['w', 'bn.gamma']);
    expect(Array.from(out[0].data)).toEqual([5, 7]); // (2 + 18)/4, (4 + 24)/4
    expect(Array.from(out[1].data)).toEqual([3.5]);
  });

  it('keeps tensors the predicate excludes (FedBN) at the reference values', () => {
    const out = weightedAverageWeightSets([{ weights: ws([2, 2], 9), numExamples: 1 }], ref, (n) => !n.startsWith('bn.'));
    expect(Array.from(out[1].data)).toEqual([1]);
    expect(Array.from(out[0].data)).toEqual([2, 2]);
  });

  it('rejects zero-weight, mismatched-shape, missing-tensor and non-finite replies', () => {
    expect(code(() => weightedAverageWeightSets([{ weights: ws([1, 1], 1), numExamples: 0 }], ref))).toBe('zero_weight');
    expect(code(() => weightedAverageWeightSets([{ weights: ws([1, 1, 1], 1), numExamples: 2 }], ref))).toBe('shape_mismatch');
    expect(code(() => weightedAverageWeightSets([{ weights: [ws([1, 1], 1)[0]], numExamples: 2 }], ref))).toBe('shape_mismatch');
    expect(code(() => weightedAverageWeightSets([{ weights: ws([1, Number.POSITIVE_INFINITY], 1), numExamples: 2 }], ref))).toBe('non_finite');
    expect(code(() => weightedAverageWeightSets([{ weights: ws([1, 1], 1), numExamples: 1.5 }], ref))).toBe('bad_weight');
    expect(code(() => weightedAverageWeightSets([], ref))).toBe('empty');
    const renamed: WeightSet = [{ name: 'x', shape: [2], data: new Float32Array(2) }, ref[1]];
    expect(code(() => checkUpdateMatches(ref, renamed))).toBe('shape_mismatch');
  });

  it('does not alias its inputs', () => {
    const u = { weights: ws([1, 1], 1), numExamples: 1 };
    const out = weightedAverageWeightSets([u], ref, () => false);
    out[0].data[0] = 99;
    expect(ref[0].data[0]).toBe(0);
  });
});

describe('weightedMetricMeans', () => {
  it('weights each metric by the examples of the replies that report it', () => {
    expect(
      weightedMetricMeans([
        { numExamples: 1, metrics: { loss: 1, dice: 0.5 } },
        { numExamples: 3, metrics: { loss: 3, dice: Number.NaN } },
      ]),
    ).toEqual({ loss: 2.5, dice: 0.5 });
  });
});
