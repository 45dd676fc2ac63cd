import { describe, expect, it } from 'vitest';
import { Rng } from '../../protocol/common/index.ts';
import { aggregateCases, computeMetrics, MetricsError, maskSurface, percentileSorted, squaredDistanceTransform } from './index.ts';

function box2d(h: number, w: number, r0: number, r1: number, c0: number, c1: number, label = 1): Uint8Array {
  const m = new Uint8Array(h * w);
  for (let r = r0; r <= r1; r++) for (let c = c0; c <= c1; c++) m[r * w + c] = label;
  return m;
}

describe('squaredDistanceTransform', () => {
  it('matches brute force on a random 3D mask with anisotropic spacing', () => {
    const rng = new Rng(7);
    const dims = [5, 6, 7];
    const spacing = [3, 0.5, 1.25];
    const mask = new Uint8Array(5 * 6 * 7);
    for (let i = 0; i < mask.length; i++) mask[i] = rng.next() < 0.08 ? 1 : 0;
    const dt = squaredDistanceTransform(mask, dims, spacing);
    for (let z = 0; z < 5; z++)
      for (let y = 0; y < 6; y++)
        for (let x = 0; x < 7; x++) {
          let best = Infinity;
          for (let i = 0; i < mask.length; i++) {
            if (!mask[i]) continue;
            const zz = Math.floor(i / 42);
            const yy = Math.floor((i % 42) / 7);
            const xx = i % 7;
            const d = ((z - zz) * 3) ** 2 + ((y - yy) * 0.5) ** 2 + ((x - xx) * 1.25) ** 2;
            best = Math.min(best, d);
          }
          expect(dt[z * 42 + y * 7 + x]).toBeCloseTo(best, 9);
        }
  });

  it('is infinite everywhere without a feature voxel', () => {
    const dt = squaredDistanceTransform(new Uint8Array(6), [2, 3], [1, 1]);
    expect([...dt].every((v) => v === Infinity)).toBe(true);
  });
});

describe('maskSurface', () => {
  it('keeps the 12 border pixels of a 4x4 square (face connectivity) and counts the image border as outside', () => {
    const s = maskSurface(box2d(10, 10, 2, 5, 2, 5), [10, 10]);
    expect(s.reduce((a, b) => a + b, 0)).toBe(12);
    const full = maskSurface(new Uint8Array(9).fill(1), [3, 3]);
    expect([...full]).toEqual([1, 1, 1, 1, 0, 1, 1, 1, 1]);
  });
});

describe('computeMetrics', () => {
  it('scores a single voxel matched exactly as perfect', () => {
    const m = computeMetrics(box2d(5, 5, 2, 2, 2, 2), box2d(5, 5, 2, 2, 2, 2), [5, 5], [1, 1], 2);
    expect(m.perClass[0]).toEqual({ dice: 1, iou: 1, hd95: 0, assd: 0 });
  });

  it('single voxels 3 rows apart at 2 mm row spacing are 6 mm apart', () => {
    const m = computeMetrics(box2d(8, 5, 1, 1, 2, 2), box2d(8, 5, 4, 4, 2, 2), [8, 5], [2, 1], 2);
    expect(m.perClass[0].dice).toBe(0);
    expect(m.perClass[0].hd95).toBeCloseTo(6, 12);
    expect(m.perClass[0].assd).toBeCloseTo(6, 12);
  });

  it('squares shifted by one column: isotropic and anisotropic spacing (hand-computed)', () => {
    const truth = box2d(10, 10, 2, 5, 2, 5);
    const pred = box2d(10, 10, 2, 5, 3, 6);
    const iso = computeMetrics(pred, truth, [10, 10], [1, 1], 2).perClass[0];
    // |P∩Y| = 12 of 16 + 16: Dice 24/32, IoU 12/20; surface distances 6 x 0 mm and 6 x 1 mm each way.
    expect(iso.dice).toBeCloseTo(0.75, 12);
    expect(iso.iou).toBeCloseTo(0.6, 12);
    expect(iso.hd95).toBeCloseTo(1, 12);
    expect(iso.assd).toBeCloseTo(0.5, 12);
    // Columns 2 mm apart: each direction has 6 x 0, 2 x 1 mm (row neighbours), 4 x 2 mm -> sum 10 mm.
    const aniso = computeMetrics(pred, truth, [10, 10], [1, 2], 2).perClass[0];
    expect(aniso.dice).toBeCloseTo(0.75, 12);
    expect(aniso.hd95).toBeCloseTo(2, 12);
    expect(aniso.assd).toBeCloseTo(20 / 24, 12);
  });

  it('3D cubes shifted by one slice with 3 mm slices have HD95 = 3 mm', () => {
    const dims = [6, 6, 6];
    const cube = (z0: number): Uint8Array => {
      const m = new Uint8Array(216);
      for (let z = z0; z < z0 + 3; z++) for (let y = 1; y < 4; y++) for (let x = 1; x < 4; x++) m[z * 36 + y * 6 + x] = 1;
      return m;
    };
    const r = computeMetrics(cube(2), cube(1), dims, [3, 1, 1], 2).perClass[0];
    expect(r.dice).toBeCloseTo((2 * 18) / 54, 12);
    expect(r.hd95).toBeCloseTo(3, 12);
  });

  it('empty prediction on non-empty truth: Dice 0, infinite distances, counted', () => {
    const m = computeMetrics(new Uint8Array(25), box2d(5, 5, 1, 2, 1, 2), [5, 5], [1, 1], 2);
    expect(m.perClass[0]).toEqual({ dice: 0, iou: 0, hd95: Infinity, assd: Infinity });
    expect(m.infiniteCount).toBe(2);
    expect(Number.isNaN(m.mean.hd95)).toBe(true);
  });

  it('empty truth -> NaN by default, scored under includeEmpty', () => {
    const truth = box2d(5, 5, 1, 2, 1, 2, 1); // class 2 absent from truth
    const pred = box2d(5, 5, 1, 2, 1, 2, 1);
    pred[24] = 2;
    const m = computeMetrics(pred, truth, [5, 5], [1, 1], 3);
    expect(Number.isNaN(m.perClass[1].dice)).toBe(true);
    expect(m.mean.dice).toBe(1); // NaN class excluded from the mean
    const inc = computeMetrics(pred, truth, [5, 5], [1, 1], 3, { includeEmpty: true });
    expect(inc.perClass[1]).toEqual({ dice: 0, iou: 0, hd95: Infinity, assd: Infinity });
    const bothEmpty = computeMetrics(truth, truth, [5, 5], [1, 1], 3, { includeEmpty: true });
    expect(bothEmpty.perClass[1]).toEqual({ dice: 1, iou: 1, hd95: 0, assd: 0 });
  });

  it('HD95 is the max of the per-direction 95th percentiles (MONAI), not the pooled one (medpy)', () => {
    // Truth: long bar; prediction: its left end only. pred->truth all 0, truth->pred grows along the bar.
    const truth = box2d(3, 40, 1, 1, 0, 39);
    const pred = box2d(3, 40, 1, 1, 0, 0);
    const r = computeMetrics(pred, truth, [3, 40], [1, 1], 2).perClass[0];
    const tp = Float64Array.from({ length: 40 }, (_, i) => i); // truth surface -> the single pred pixel
    const monai = Math.max(0, percentileSorted(tp, 95));
    const pooled = percentileSorted(Float64Array.from([0, ...tp]).sort(), 95);
    expect(r.hd95).toBeCloseTo(monai, 12);
    expect(Math.abs(monai - pooled)).toBeGreaterThan(0.01);
  });

  it('refuses bad input with typed errors', () => {
    const bad = (f: () => unknown, code: string): void => {
      try {
        f();
        expect.unreachable();
      } catch (e) {
        expect(e).toBeInstanceOf(MetricsError);
        expect((e as MetricsError).code).toBe(code);
      }
    };
    bad(() => computeMetrics(new Uint8Array(4), new Uint8Array(5), [2, 2], [1, 1], 2), 'SIZE_MISMATCH');
    bad(() => computeMetrics(new Uint8Array(4), new Uint8Array(4), [2, 2], [1], 2), 'BAD_SPACING');
    bad(() => computeMetrics(new Uint8Array(4), new Uint8Array(4), [2, 2], [1, 0], 2), 'BAD_SPACING');
    bad(() => computeMetrics(new Uint8Array([3, 0, 0, 0]), new Uint8Array(4), [2, 2], [1, 1], 2), 'BAD_LABEL');
  });
});

describe('aggregateCases', () => {
  it('averages finite values, drops NaN, counts infinities', () => {
    const a = computeMetrics(box2d(5, 5, 1, 2, 1, 2), box2d(5, 5, 1, 2, 1, 2), [5, 5], [1, 1], 2);
    const b = computeMetrics(new Uint8Array(25), box2d(5, 5, 1, 2, 1, 2), [5, 5], [1, 1], 2);
    const c = computeMetrics(new Uint8Array(25), new Uint8Array(25), [5, 5], [1, 1], 2);
    const agg = aggregateCases([a, b, c]);
    expect(agg.perClass[0].dice.mean).toBeCloseTo(0.5, 12);
    expect(agg.perClass[0].dice.std).toBeCloseTo(0.5, 12);
    expect(agg.perClass[0].dice.nanCount).toBe(1);
    expect(agg.perClass[0].hd95).toMatchObject({ mean: 0, n: 1, infiniteCount: 1, nanCount: 1 });
    expect(agg.infiniteCount).toBe(2);
    expect(agg.numCases).toBe(3);
  });
});
