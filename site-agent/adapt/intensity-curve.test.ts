import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { AdaptError } from './adapt-error.ts';
import { applyCurve, applyCurveToArray, basisMatrix, curvePolarity, evalCurve, identityCurve, loadCurve, makeCurve, parseCurve, quantileKnots, saveCurve } from './intensity-curve.ts';
import { gaussianFilterSlices } from './spatial-prefilter.ts';

describe('intensity curve', () => {
  const c = makeCurve([0, 1, 3], [0, 2, 1]);

  it('interpolates linearly between knots and extends the end segments', () => {
    expect(evalCurve(c, 0.5)).toBeCloseTo(1, 12);
    expect(evalCurve(c, 2)).toBeCloseTo(1.5, 12);
    expect(evalCurve(c, 3)).toBeCloseTo(1, 12);
    // Beyond the ends: slope 2 on the left, -0.5 on the right.
    expect(evalCurve(c, -1)).toBeCloseTo(-2, 12);
    expect(evalCurve(c, 5)).toBeCloseTo(0, 12);
  });

  it('its basis matrix times the values is the curve', () => {
    const x = Float32Array.from([-1, 0, 0.25, 1, 2.5, 3, 4]);
    const b = basisMatrix(c.knots, x);
    for (let i = 0; i < x.length; i++) {
      const y = c.values.reduce((s, v, k) => s + v * b[i * 3 + k], 0);
      expect(y).toBeCloseTo(evalCurve(c, x[i]), 5);
    }
  });

  it('with two knots through y = x or y = -x it is exactly the identity or the negation (the polarity check)', () => {
    const x = Float32Array.from([-3.3, -0.1, 0, 0.7, 12.25]);
    const id = identityCurve([-1.5, 2.5]);
    const neg = makeCurve([-1.5, 2.5], [1.5, -2.5]);
    expect(curvePolarity(id)).toBe(1);
    expect(curvePolarity(neg)).toBe(-1);
    expect(curvePolarity(c)).toBeNull();
    expect(Array.from(applyCurveToArray(id, x))).toEqual(Array.from(x));
    expect(Array.from(applyCurveToArray(neg, x))).toEqual(Array.from(x, (v) => -v));
    const ds = { n: 1, height: 1, width: 5, channels: 1, images: x, spacing: [1, 1] as const, caseIds: ['a'] };
    expect(applyCurve(neg, ds).images).not.toBe(x);
    expect(applyCurve(neg, ds).caseIds).toEqual(['a']);
  });

  it('places K strictly increasing knots at quantiles, even when a large share of the image is one value', () => {
    const v = new Float32Array(10_000);
    for (let i = 0; i < v.length; i++) v[i] = i < 7000 ? 0 : (i - 7000) / 3000;
    const k = quantileKnots(v, 8);
    expect(k).toHaveLength(8);
    for (let i = 1; i < k.length; i++) expect(k[i]).toBeGreaterThan(k[i - 1]);
    expect(k[0]).toBe(0);
    expect(k[7]).toBeGreaterThan(0.9);
    expect(() => quantileKnots(new Float32Array(10).fill(2), 4)).toThrow(expect.objectContaining({ code: 'BAD_SHAPE' }));
    expect(() => quantileKnots(v, 1)).toThrow(AdaptError);
  });

  it('refuses bad curves with the field named, and round-trips through its JSON file', async () => {
    expect(() => makeCurve([0, 0], [1, 2])).toThrow(/knots.1: knots must be strictly increasing/);
    expect(() => makeCurve([0, 1, 2], [1, 2])).toThrow(/values: expected 3 values/);
    expect(() => makeCurve([0, 1], [1, NaN])).toThrow(AdaptError);
    const dir = await mkdtemp(join(tmpdir(), 'fedsfda-curve-'));
    try {
      await saveCurve(c, join(dir, 'c.json'));
      expect(await loadCurve(join(dir, 'c.json'))).toEqual(c);
      await writeFile(join(dir, 'bad.json'), JSON.stringify({ ...c, version: 2 }));
      await expect(loadCurve(join(dir, 'bad.json'))).rejects.toMatchObject({ code: 'BAD_OPTION' });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('with a pre-filter: filters, then maps; saved as version 2 and round-tripped; a version-1 file still loads', async () => {
    const f = makeCurve([0, 1, 3], [0, 2, 1], { kind: 'gaussian', sigma: 0.8 });
    expect(f.version).toBe(2);
    const x = Float32Array.from({ length: 2 * 4 * 5 }, (_, i) => ((i * 37) % 11) / 4);
    const ds = { n: 2, height: 4, width: 5, channels: 1, images: x, spacing: [1, 1] as const, caseIds: ['a', 'b'] };
    const expected = Array.from(gaussianFilterSlices(x, 2, 4, 5, 0.8), (v) => evalCurve(c, v));
    expect(Array.from(applyCurve(f, ds).images)).toEqual(expected.map((v) => expect.closeTo(v, 5)));
    // Not the curve alone: the filter is applied.
    expect(Array.from(applyCurve(f, ds).images)).not.toEqual(Array.from(applyCurve(c, ds).images));
    // Pixel-wise application cannot honour a filter, and a filtered two-knot identity is not the polarity check.
    expect(() => applyCurveToArray(f, x)).toThrow(expect.objectContaining({ code: 'BAD_OPTION' }));
    expect(curvePolarity(makeCurve([-1, 1], [-1, 1], { kind: 'gaussian', sigma: 1 }))).toBeNull();
    const dir = await mkdtemp(join(tmpdir(), 'fedsfda-curve-'));
    try {
      await saveCurve(f, join(dir, 'f.json'));
      expect(await loadCurve(join(dir, 'f.json'))).toEqual(f);
      // A file written before pre-filters existed (version 1, no prefilter field).
      await writeFile(join(dir, 'old.json'), '{"kind":"fedsfda-intensity-curve","version":1,"knots":[0,1,3],"values":[0,2,1]}');
      expect(await loadCurve(join(dir, 'old.json'))).toEqual(c);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
    expect(() => parseCurve({ ...c, prefilter: { kind: 'gaussian', sigma: 1 } })).toThrow(/prefilter: a version-1 curve has no pre-filter/);
    expect(() => parseCurve({ ...c, version: 2 })).toThrow(/prefilter: a version-2 curve needs its pre-filter/);
    expect(() => makeCurve([0, 1], [0, 1], { kind: 'gaussian', sigma: 0 })).toThrow(AdaptError);
    expect(() => parseCurve({ ...f, prefilter: { kind: 'median', sigma: 1 } })).toThrow(AdaptError);
  });
});
