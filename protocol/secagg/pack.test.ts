import { describe, expect, it } from 'vitest';
import { SecAggError } from './errors.ts';
import { packLayout, packVectors, sameLayout, unpackVectors } from './pack.ts';

describe('packVectors / unpackVectors', () => {
  it('round-trips named vectors in name order, independent of insertion order', () => {
    const a = { 'w.conv': Float32Array.of(1, 2, 3), count: Float32Array.of(10), 'bn.mean': Float32Array.of(4, 5) };
    const b = { count: Float32Array.of(10), 'bn.mean': Float32Array.of(4, 5), 'w.conv': Float32Array.of(1, 2, 3) };
    const pa = packVectors(a);
    const pb = packVectors(b);
    expect(pa.layout.entries.map((e) => e.name)).toEqual(['bn.mean', 'count', 'w.conv']);
    expect(Array.from(pa.vector)).toEqual([4, 5, 10, 1, 2, 3]);
    expect(sameLayout(pa.layout, pb.layout)).toBe(true);
    const back = unpackVectors(pa.vector, pa.layout);
    expect(Array.from(back['w.conv'])).toEqual([1, 2, 3]);
    expect(Array.from(back.count)).toEqual([10]);
  });

  it('refuses a vector that does not match the layout', () => {
    const layout = packLayout({ a: 2, b: 3 });
    expect(() => unpackVectors(new Float32Array(4), layout)).toThrow(SecAggError);
    expect(sameLayout(layout, packLayout({ a: 3, b: 2 }))).toBe(false);
  });
});
