import { describe, expect, it } from 'vitest';
import { SecAggError } from './errors.ts';
import {
  checkQuantConfig,
  dequantizeSum,
  maxSafeScaleBits,
  quantLevel,
  quantizationErrorBound,
  quantize,
} from './quantize.ts';

function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

describe('fixed-point quantization into Z_2^32', () => {
  it('sums of n quantized vectors decode within n*2^-(s+1) + float32 rounding', () => {
    const rnd = lcg(42);
    for (const n of [1, 3, 20, 100]) {
      const cfg = { clip: 4, scaleBits: maxSafeScaleBits(4, n) };
      checkQuantConfig(cfg, n);
      const len = 257;
      const acc = new Uint32Array(len);
      const exact = new Float64Array(len);
      for (let i = 0; i < n; i++) {
        const v = Float32Array.from({ length: len }, () => (rnd() * 2 - 1) * 4);
        const q = quantize(v, cfg);
        for (let j = 0; j < len; j++) {
          acc[j] += q[j];
          exact[j] += v[j];
        }
      }
      const out = dequantizeSum(acc, cfg);
      const bound = quantizationErrorBound(cfg, n);
      for (let j = 0; j < len; j++) {
        expect(Math.abs(out[j] - exact[j])).toBeLessThanOrEqual(bound + Math.abs(exact[j]) * 2 ** -24 + 1e-12);
      }
    }
  });

  it('clips to [-clip, clip] and is symmetric in sign', () => {
    const cfg = { clip: 1, scaleBits: 10 };
    const q = quantize(Float32Array.of(5, -5, 0.5, -0.5, 0.00048828125, -0.00048828125), cfg);
    const d = dequantizeSum(q, cfg);
    expect(Array.from(d)).toEqual([1, -1, 0.5, -0.5, 0.0009765625, -0.0009765625]);
  });

  it('refuses non-finite inputs', () => {
    expect(() => quantize(Float32Array.of(1, Number.NaN), { clip: 1, scaleBits: 8 })).toThrow(/non-finite/);
    expect(() => quantize(Float32Array.of(Infinity), { clip: 1, scaleBits: 8 })).toThrow(SecAggError);
  });

  it('refuses before the round any n * range that could wrap around, and accepts the largest safe one', () => {
    const n = 100;
    const s = maxSafeScaleBits(8, n);
    expect(() => checkQuantConfig({ clip: 8, scaleBits: s }, n)).not.toThrow();
    expect(n * quantLevel({ clip: 8, scaleBits: s })).toBeLessThanOrEqual(2 ** 31 - 1);
    try {
      checkQuantConfig({ clip: 8, scaleBits: s + 1 }, n);
      expect.unreachable();
    } catch (e) {
      expect((e as SecAggError).code).toBe('bad-config');
      expect((e as Error).message).toMatch(/wraps around/);
    }
    // clip 8 at step 2^-20 is L = 2^23 levels: 255 sites fit (255 * 2^23 < 2^31), 256 would wrap.
    expect(() => checkQuantConfig({ clip: 8, scaleBits: 20 }, 255)).not.toThrow();
    expect(() => checkQuantConfig({ clip: 8, scaleBits: 20 }, 256)).toThrow(/wraps around/);
  });

  it('at the wrap limit the extreme sum still decodes exactly', () => {
    const n = 7;
    const cfg = { clip: 2, scaleBits: maxSafeScaleBits(2, n) };
    const acc = new Uint32Array(2);
    for (let i = 0; i < n; i++) {
      const q = quantize(Float32Array.of(2, -2), cfg);
      acc[0] += q[0];
      acc[1] += q[1];
    }
    expect(Array.from(dequantizeSum(acc, cfg))).toEqual([14, -14]);
  });

  it('refuses nonsense parameters', () => {
    expect(() => checkQuantConfig({ clip: 0, scaleBits: 8 }, 3)).toThrow(SecAggError);
    expect(() => checkQuantConfig({ clip: 1, scaleBits: 8.5 }, 3)).toThrow(SecAggError);
    expect(() => checkQuantConfig({ clip: 1e-9, scaleBits: 2 }, 3)).toThrow(/zero levels/);
  });
});
