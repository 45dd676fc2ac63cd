import { describe, expect, it } from 'vitest';
import { computeMetrics } from '../metrics/index.ts';
import { groupByCase, scoreVolumes } from './score-volumes.ts';

// Two cases of 2 slices each, 2x2 pixels, 2 classes; case "b" is interleaved with "a" on purpose.
const layout = { n: 4, height: 2, width: 2, spacing: [1, 1] as const, caseIds: ['a', 'b', 'a', 'b'] };
const truth = Uint8Array.from([1, 1, 0, 0, /* b */ 1, 0, 0, 0, /* a */ 1, 1, 0, 0, /* b */ 0, 0, 0, 1]);
const pred = Uint8Array.from([1, 0, 0, 0, /* b */ 1, 0, 0, 0, /* a */ 1, 1, 0, 0, /* b */ 0, 0, 0, 0]);

describe('scoreVolumes (the one scorer)', () => {
  it('groups slices by case id even when cases interleave, and scores each case as one 3D volume', () => {
    const r = scoreVolumes(pred, truth, { ...layout, sliceThickness: 2 }, 2);
    expect(r.cases.map((c) => c.caseId)).toEqual(['a', 'b']);
    // Case a: truth 4 foreground pixels, prediction 3, all inside: Dice 6/7.
    const a = computeMetrics(
      Uint8Array.from([1, 0, 0, 0, 1, 1, 0, 0]),
      Uint8Array.from([1, 1, 0, 0, 1, 1, 0, 0]),
      [2, 2, 2],
      [2, 1, 1],
      2,
    );
    expect(r.cases[0].metrics).toEqual(a);
    expect(r.cases[0].metrics.perClass[0].dice).toBeCloseTo(6 / 7, 12);
    // Case b: truth 2, prediction 1 (overlapping): Dice 2/3.
    expect(r.cases[1].metrics.perClass[0].dice).toBeCloseTo(2 / 3, 12);
  });

  it('scores every slice in 2D, named <case>#<slice in case>, when the slice thickness is unknown', () => {
    const r = scoreVolumes(pred, truth, layout, 2);
    expect(r.cases.map((c) => c.caseId)).toEqual(['a#0', 'a#1', 'b#0', 'b#1']);
    expect(r.cases[0].metrics.perClass[0].dice).toBeCloseTo(2 / 3, 12);
    expect(r.cases[1].metrics.perClass[0].dice).toBe(1);
  });

  it('refuses buffers that do not match the layout', () => {
    expect(() => scoreVolumes(pred.subarray(1), truth, layout, 2)).toThrow(/n\*h\*w = 16/);
  });

  it('groupByCase keeps first-seen case order and dataset order within a case', () => {
    expect(groupByCase(['x', 'y', 'x', 'z', 'y'])).toEqual([
      { caseId: 'x', slices: [0, 2] },
      { caseId: 'y', slices: [1, 4] },
      { caseId: 'z', slices: [3] },
    ]);
  });
});
