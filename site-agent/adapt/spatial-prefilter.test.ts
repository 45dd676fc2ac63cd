import { describe, expect, it } from 'vitest';
import { Rng } from '../../protocol/common/index.ts';
import { applyPrefilter, gaussianFilterSlices } from './spatial-prefilter.ts';

describe('spatial pre-filter (Gaussian)', () => {
  const variance = (a: Float32Array): number => {
    const m = a.reduce((s, v) => s + v, 0) / a.length;
    return a.reduce((s, v) => s + (v - m) ** 2, 0) / a.length;
  };

  it('leaves constants alone (normalised kernel, replicate borders), is the identity at σ = 0 and returns a new array', () => {
    const c = new Float32Array(2 * 5 * 7).fill(3.25);
    expect(Array.from(gaussianFilterSlices(c, 2, 5, 7, 1.3))).toEqual(Array.from(c, () => expect.closeTo(3.25, 5)));
    const x = Float32Array.from({ length: 35 }, (_, i) => (i * 7919) % 13);
    const same = gaussianFilterSlices(x, 1, 5, 7, 0);
    expect(same).not.toBe(x);
    expect(Array.from(same)).toEqual(Array.from(x));
  });

  it('lowers the variance of white noise by about 1 / (4πσ²) and keeps slices apart', () => {
    const rng = new Rng(5);
    const h = 64;
    const noise = Float32Array.from({ length: 2 * h * h }, () => rng.normal());
    const out = gaussianFilterSlices(noise, 2, h, h, 1);
    // Σ w_i² over a 2-D Gaussian of σ = 1 px is ≈ 1 / (4π) ≈ 0.080.
    expect(variance(out)).toBeGreaterThan(0.06);
    expect(variance(out)).toBeLessThan(0.1);
    // A bright second slice does not leak into the first.
    const two = new Float32Array(2 * 16);
    two.fill(1, 16);
    const f = gaussianFilterSlices(two, 2, 4, 4, 2);
    expect(Math.max(...f.subarray(0, 16))).toBe(0);
    expect(Math.min(...f.subarray(16))).toBeCloseTo(1, 6);
  });

  it('applies to 1-channel slices only, and refuses a σ out of range', () => {
    const ds = { n: 1, height: 2, width: 2, channels: 1, images: new Float32Array(4), spacing: [1, 1] as const, caseIds: ['a'] };
    expect(applyPrefilter({ kind: 'gaussian', sigma: 1 }, ds).caseIds).toEqual(['a']);
    expect(() => applyPrefilter({ kind: 'gaussian', sigma: 1 }, { ...ds, channels: 2, images: new Float32Array(8) })).toThrow(expect.objectContaining({ code: 'BAD_SHAPE' }));
    expect(() => gaussianFilterSlices(new Float32Array(4), 1, 2, 2, -1)).toThrow(expect.objectContaining({ code: 'BAD_OPTION' }));
  });
});
