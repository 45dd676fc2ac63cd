import { describe, expect, it } from 'vitest';
import { bytesEqual, concatBytes, decodeBase64Strict, decodeUtf8Strict, lengthPrefixed, Rng, toBase64, utf8 } from './index.ts';

describe('Rng', () => {
  it('repeats for a seed, differs across seeds, and forks reproducible independent streams', () => {
    const draw = (r: Rng) => Array.from({ length: 5 }, () => r.uint32());
    expect(draw(new Rng(7))).toEqual(draw(new Rng(7)));
    expect(draw(new Rng(7))).not.toEqual(draw(new Rng(8)));
    const a = new Rng(3);
    const b = new Rng(3);
    const fa = a.fork();
    expect(draw(fa)).toEqual(draw(b.fork()));
    expect(draw(fa)).not.toEqual(draw(a));
  });

  it('draws uniforms in [0, 1) with mean near 1/2 and normals with unit variance', () => {
    const r = new Rng(1);
    const u = Array.from({ length: 20_000 }, () => r.next());
    expect(Math.min(...u)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...u)).toBeLessThan(1);
    expect(u.reduce((s, x) => s + x, 0) / u.length).toBeCloseTo(0.5, 1);
    const z = Array.from({ length: 20_000 }, () => r.normal());
    expect(z.reduce((s, x) => s + x * x, 0) / z.length).toBeCloseTo(1, 1);
    expect(r.shuffle([1, 2, 3, 4, 5]).sort()).toEqual([1, 2, 3, 4, 5]);
  });
});

describe('bytes', () => {
  it('round-trips and refuses what is not canonical', () => {
    expect(decodeUtf8Strict(utf8('é ok'))).toBe('é ok');
    expect(decodeUtf8Strict(Uint8Array.of(0xff, 0xfe))).toBeUndefined();
    const b = Uint8Array.of(1, 2, 3);
    expect(decodeBase64Strict(toBase64(b))).toEqual(b);
    expect(decodeBase64Strict('AQID=')).toBeUndefined();
    expect(decodeBase64Strict('AQ-D')).toBeUndefined();
    expect(concatBytes(lengthPrefixed(b), b)).toEqual(Uint8Array.of(3, 0, 0, 0, 1, 2, 3, 1, 2, 3));
    expect(bytesEqual(b, Uint8Array.of(1, 2, 3))).toBe(true);
    expect(bytesEqual(b, Uint8Array.of(1, 2, 4))).toBe(false);
    expect(bytesEqual(b, Uint8Array.of(1, 2))).toBe(false);
  });
});
