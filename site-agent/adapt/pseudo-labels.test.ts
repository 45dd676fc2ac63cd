import { describe, expect, it } from 'vitest';
import { AdaptError } from './adapt-error.ts';
import { agreeWithMemory, classBalancedSelection } from './pseudo-labels.ts';

describe('class-balanced pseudo-labels (CBST)', () => {
  it('keeps the top fraction of each class separately, so a less confident class is not starved', () => {
    // class 0: confidences 0.95..0.99 (5 px); class 1: 0.5..0.6 (4 px). A global τ = 0.9 would keep no class-1 pixel.
    const conf = Float32Array.from([0.95, 0.96, 0.97, 0.98, 0.99, 0.5, 0.55, 0.58, 0.6]);
    const pred = Int32Array.from([0, 0, 0, 0, 0, 1, 1, 1, 1]);
    const pl = classBalancedSelection(conf, pred, 3, 0.5);
    // class 0: quantile index floor(0.5*5)=2 -> τ0 = 0.97 keeps 3; class 1: index 2 -> τ1 = 0.58 keeps 2.
    expect(pl.thresholds[0]).toBeCloseTo(0.97, 6);
    expect(pl.thresholds[1]).toBeCloseTo(0.58, 6);
    expect(pl.thresholds[2]).toBe(Infinity);
    expect([...pl.mask]).toEqual([0, 0, 1, 1, 1, 0, 0, 1, 1]);
    expect(pl.selectedFraction).toBeCloseTo(5 / 9, 9);
    expect([...pl.labels]).toEqual([...pred]);
  });

  it('keepFraction 1 selects everything; out of range is a typed error', () => {
    const pl = classBalancedSelection(Float32Array.from([0.3, 0.9]), Int32Array.from([1, 0]), 2, 1);
    expect([...pl.mask]).toEqual([1, 1]);
    expect(() => classBalancedSelection(new Float32Array(1), new Int32Array(1), 2, 0)).toThrow(AdaptError);
  });

  it('memory consistency drops selected pixels whose remembered class differs', () => {
    const pl = classBalancedSelection(Float32Array.from([0.9, 0.9, 0.9, 0.2]), Int32Array.from([0, 1, 1, 0]), 2, 1);
    const kept = agreeWithMemory(pl, Int32Array.from([0, 0, 1, 0]));
    expect([...kept.mask]).toEqual([1, 0, 1, 1]);
    expect(kept.selectedFraction).toBe(0.75);
    expect(() => agreeWithMemory(pl, new Int32Array(3))).toThrow(AdaptError);
  });
});
