import { describe, expect, it } from 'vitest';
import { SecAggError } from './errors.ts';
import { dequantizeSum, maxSafeScaleBits, quantize, type QuantConfig } from './quantize.ts';
import {
  RANGE_BUCKETS,
  RANGE_MAX_EXP,
  RANGE_MIN_EXP,
  checkExponent,
  exponentBound,
  exponentsFromRangeSums,
  rangeVectors,
  scaleByExponents,
} from './statistic-range.ts';

/** The masked sum's arithmetic without the masks: quantize each site's vector, add mod 2^32, dequantize. */
function quantizedSum(vectors: Float32Array[], cfg: QuantConfig): Float32Array {
  const acc = new Uint32Array(vectors[0].length);
  for (const v of vectors) {
    const q = quantize(v, cfg);
    for (let i = 0; i < acc.length; i++) acc[i] = (acc[i] + q[i]) >>> 0;
  }
  return dequantizeSum(acc, cfg);
}

describe('exponentBound', () => {
  it('is the smallest power of two bounding the largest magnitude, exactly at powers of two', () => {
    expect(exponentBound('a', Float32Array.of(1))).toBe(0);
    expect(exponentBound('a', Float32Array.of(-1.0000001))).toBe(1);
    expect(exponentBound('a', Float32Array.of(0.5, -0.25))).toBe(-1);
    expect(exponentBound('a', Float32Array.of(31002.8))).toBe(15);
    expect(exponentBound('a', Float32Array.of(2 ** 20, 3))).toBe(20);
    expect(exponentBound('a', Float32Array.of(2 ** 20 + 256))).toBe(21);
    expect(exponentBound('a', Float32Array.of(0, 0))).toBe(RANGE_MIN_EXP);
    expect(exponentBound('a', new Float32Array(0))).toBe(RANGE_MIN_EXP);
    expect(exponentBound('a', Float32Array.of(1e-30))).toBe(RANGE_MIN_EXP);
  });

  it('refuses NaN, Infinity and values above 2^64 with a typed error naming the statistic', () => {
    for (const bad of [NaN, Infinity, -Infinity, 2 ** 65]) {
      const e = (() => {
        try {
          exponentBound('bn/x/sumSq', Float32Array.of(1, bad));
        } catch (err) {
          return err;
        }
      })();
      expect(e).toBeInstanceOf(SecAggError);
      expect((e as SecAggError).code).toBe('bad-input');
      expect((e as Error).message).toContain('bn/x/sumSq');
    }
  });
});

describe('range round and scaled sum', () => {
  it('the summed one-hot histograms give the largest bound of any site; scaling is undone exactly', () => {
    const sites = [
      { sumSq: Float32Array.of(10334.27, 1e-3), count: Float32Array.of(0.1) },
      { sumSq: Float32Array.of(31002.8, 2e-3), count: Float32Array.of(0.3) },
      { sumSq: Float32Array.of(-5, 0), count: Float32Array.of(0) },
    ];
    const hist = rangeVectors(sites[0]);
    expect(Object.keys(hist).sort()).toEqual(['count', 'sumSq']);
    expect(hist.sumSq.length).toBe(RANGE_BUCKETS);
    expect(hist.sumSq.reduce((a, b) => a + b, 0)).toBe(1);

    const clip1: QuantConfig = { clip: 1, scaleBits: maxSafeScaleBits(1, 3) };
    const names = ['count', 'sumSq'] as const;
    const rangeSums = Object.fromEntries(names.map((n) => [n, quantizedSum(sites.map((s) => rangeVectors(s)[n]), clip1)]));
    const exps = exponentsFromRangeSums(rangeSums);
    expect(exps).toEqual({ sumSq: 15, count: -1 });

    const scaled = sites.map((s) => scaleByExponents(s, exps, -1));
    for (const s of scaled) for (const v of Object.values(s)) for (const x of v) expect(Math.abs(x)).toBeLessThanOrEqual(1);
    const sums = scaleByExponents(Object.fromEntries(names.map((n) => [n, quantizedSum(scaled.map((s) => s[n]), clip1)])), exps, 1);
    const want = { sumSq: [10334.27 + 31002.8 - 5, 3e-3], count: [0.4] };
    // Error bound: 3 sites x half a step of 2^-scaleBits, times the vector's bound 2^e, plus float32 rounding.
    for (const n of names) {
      const bound = 3 * 2 ** -(clip1.scaleBits + 1) * 2 ** exps[n];
      want[n].forEach((w, i) => expect(Math.abs(sums[n][i] - w)).toBeLessThanOrEqual(bound + Math.abs(w) * 2 ** -23));
    }
  });

  it('refuses malformed histograms and exponents', () => {
    expect(() => exponentsFromRangeSums({ a: new Float32Array(3) })).toThrow(/expected 129/);
    expect(() => exponentsFromRangeSums({ a: new Float32Array(RANGE_BUCKETS) })).toThrow(/counts no site/);
    expect(() => checkExponent('a', RANGE_MAX_EXP + 1)).toThrow(SecAggError);
    expect(() => checkExponent('a', 0.5)).toThrow(SecAggError);
    expect(() => scaleByExponents({ a: Float32Array.of(1) }, {}, -1)).toThrow(/no exponent for statistic "a"/);
  });
});
