import { beforeAll, describe, expect, it } from 'vitest';
import { fitInputAdapter, JointCurveSite, jointCurveOptions, toUnlabeled, type UnlabeledSlices } from '../../site-agent/adapt/index.ts';
import { makeNestedBoxes, TOY_CONFIG, TOY_SIZE } from '../../site-agent/adapt/toy-shift-fixture.ts';
import { initEngine } from '../../site-agent/engine/index.ts';
import { createUNet } from '../../site-agent/model/index.ts';
import { MultiTargetError } from './multi-target-config.ts';
import { inClipRange } from './multi-target-pooled.ts';
import { runMultiTarget } from './multi-target.ts';
import { expectSecureSumsArePlainSums, pooledSmokeScenario } from './multi-target-fixture.ts';

beforeAll(async () => {
  await initEngine();
});

const site = (seed: number, gain: number, offset: number): UnlabeledSlices => toUnlabeled(makeNestedBoxes(8, TOY_SIZE, seed, gain, offset));

describe('pooled vectors and the clip range', () => {
  it('a site vector outside the secure-aggregation clip range is refused with a typed code, not clamped', () => {
    // Arrange
    const inside = Float32Array.of(-8, 0, 8);
    const outside = Float32Array.of(1, 8.5);
    // Act / Assert
    expect(inClipRange(inside, 8, 'site a')).toBe(inside);
    let caught: unknown;
    try {
      inClipRange(outside, 8, 'site b');
    } catch (e) {
      caught = e;
    }
    expect(caught).toBeInstanceOf(MultiTargetError);
    expect((caught as MultiTargetError).code).toBe('OUTSIDE_CLIP_RANGE');
    expect((caught as MultiTargetError).message).toContain('site b');
    expect(() => inClipRange(Float32Array.of(Number.NaN), 8, 'site c')).toThrow(MultiTargetError);
  });

  it('a config error keeps its old code', () => {
    expect(new MultiTargetError('x').code).toBe('BAD_MULTI_TARGET_CONFIG');
  });
});

describe('warm start from the pooled curve', () => {
  it("a site's local refinement from a start does not raise its own objective, and 0 steps is the start", () => {
    // Arrange: a site with its own gain/offset; the start is another site's own curve (a stand-in for a pooled one).
    const u = createUNet(TOY_CONFIG, 5);
    const adapter = { knots: 4, steps: 3, starts: ['identity', 'negation'] as const, randomStarts: 0 };
    const target = site(41, 1.2, 0.1);
    const other = fitInputAdapter(u, site(42, 0.9, -0.1), null, { ...adapter, batchSize: 8, seed: 3 }).curve;
    const s = new JointCurveSite(u, target, null, adapter, jointCurveOptions({ ...adapter, lr: 0.02, batchSize: 8, seed: 1 }));
    try {
      // Act
      const start = [...other.values];
      const refined = s.refine(start, 10);
      // Assert
      expect(s.refine(start, 0)).toEqual(start);
      expect(s.score(refined)).toBeLessThanOrEqual(s.score(start) * (1 + 1e-6));
      expect(() => s.refine(start, -1)).toThrow();
    } finally {
      s.dispose();
      u.dispose();
    }
  }, 60_000);
});

describe('keepAlone: half a pooled package falls back to adapting alone', () => {
  it('a site that took the pooled curve but refused the pooled statistics ends with exactly its alone result; no extra secure sum', async () => {
    // Arrange: every site takes the pooled curve (tolerance 100) and refuses pooled statistics at any entropy rise.
    const cfg = pooledSmokeScenario('keep-alone smoke', { inputCurve: true, bnMoments: true, keepAlone: true, tolerance: 100, entropyTolerance: 0 });
    const lines: string[] = [];
    const sums: { inputs: Float32Array[]; sum: Float32Array }[] = [];
    // Act
    const r = await runMultiTarget(cfg, { onProgress: (m) => lines.push(m), onSiteInputs: (_p, _r, inputs, sum) => sums.push({ inputs, sum }) });
    // Assert: a site with the pooled curve and its own statistics reports its alone Dice exactly.
    const curve = lines.find((m) => m.includes('pooled curve (')) ?? '';
    const bn = lines.find((m) => m.includes('pooled BN statistics kept by')) ?? '';
    const partial = r.sites.filter((s) => curve.includes(`${s.id} yes`) && bn.includes(`${s.id} no`));
    expect(partial.length).toBeGreaterThan(0);
    for (const s of partial) expect(s.federated[0]).toBe(s.alone[0]);
    expect(lines.some((m) => m.includes('alone result kept by'))).toBe(true);
    // Curve: 1 restart sum + 2 restarts x (2 steps + 1 score); weights: 1 round; BN moments: 1. Adapting alone adds none.
    expect(r.secureRounds).toBe(1 + 2 * 3 + 1 + 1);
    expectSecureSumsArePlainSums(sums, true);
  }, 300_000);
});
