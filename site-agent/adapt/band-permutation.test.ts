import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { WeightSet } from '../../protocol/index.ts';
import { Rng } from '../../protocol/common/index.ts';
import type { UNet } from '../model/index.ts';
import { bandKnots, bandPermutations, intensityBands, permutationValues } from './band-permutation.ts';
import { applyCurve, evalCurve, fitInputAdapter, POLARITY_CHECK, toUnlabeled, type SourceStats } from './index.ts';
import { makeNestedBoxes, meanDice, toySourceSetup, TOY_SIZE } from './toy-shift-fixture.ts';
import { sourceTargets, disposeTargets } from './adapter-objective.ts';
import { identityCurve, makeCurve } from './intensity-curve.ts';
import { labelsAfterAdaBn, resolveRestartAgreement, restartAgreement } from './restart-agreement.ts';

describe('intensity bands (multi-level Otsu)', () => {
  it('splits a noisy three-level image at the gaps between the levels', () => {
    // Arrange: 50% at 0, 30% at 2, 20% at 5, noise 0.2.
    const rng = new Rng(4);
    const values = Float32Array.from({ length: 20_000 }, (_, i) => (i % 10 < 5 ? 0 : i % 10 < 8 ? 2 : 5) + 0.2 * rng.normal());
    // Act
    const b = intensityBands(values, 3);
    // Assert
    expect(b.thresholds).toHaveLength(2);
    expect(b.thresholds[0]).toBeGreaterThan(0.6);
    expect(b.thresholds[0]).toBeLessThan(1.4);
    expect(b.thresholds[1]).toBeGreaterThan(2.6);
    expect(b.thresholds[1]).toBeLessThan(4.4);
    b.means.forEach((m, j) => expect(m).toBeCloseTo([0, 2, 5][j], 1));
    b.weights.forEach((w, j) => expect(w).toBeCloseTo([0.5, 0.3, 0.2][j], 2));
  });

  it('places two increasing knots per band; the identity permutation is the identity curve, a swap moves the bands', () => {
    const rng = new Rng(5);
    const values = Float32Array.from({ length: 9_000 }, (_, i) => (i % 3) * 3 + 0.3 * rng.normal());
    const { knots, band } = bandKnots(values, intensityBands(values, 3));
    expect(band).toEqual([0, 0, 1, 1, 2, 2]);
    for (let i = 1; i < knots.length; i++) expect(knots[i]).toBeGreaterThan(knots[i - 1]);
    expect(permutationValues(knots, band, [0, 1, 2])).toEqual(knots);
    // Band 1 takes band 2's place and band 2 band 1's: their knots trade levels, band 0 stays.
    expect(permutationValues(knots, band, [0, 2, 1])).toEqual([knots[0], knots[1], knots[4], knots[5], knots[2], knots[3]]);
  });

  it('enumerates every band order but the identity, capped by a seeded sample', () => {
    const all = bandPermutations(4, 1000, new Rng(1));
    expect(all).toHaveLength(23);
    expect(new Set(all.map((p) => p.join())).size).toBe(23);
    expect(all.some((p) => p.every((x, i) => x === i))).toBe(false);
    expect(bandPermutations(5, 10, new Rng(1))).toHaveLength(10);
  });
});

describe('band-permutation starts in the input adapter', () => {
  let unet: UNet;
  let stats: SourceStats;
  let sourceWeights: WeightSet;

  beforeAll(async () => {
    ({ unet, weights: sourceWeights, stats } = await toySourceSetup());
  }, 600_000);

  afterAll(() => unet?.dispose());

  /** The toy target whose ring (0.5 at the source) and core (1.0) swap levels, and its labels. */
  const ringCoreSwapped = () => {
    const t = makeNestedBoxes(16, TOY_SIZE, 7);
    return { target: toUnlabeled({ ...t, images: t.images.map((v) => (v < 0.25 ? v : v < 0.75 ? v + 0.5 : v - 0.5)) }), labels: t.labels };
  };

  it('recovers a swapped band order that the identity / negation starts miss, label-free, and says so', () => {
    // Arrange: the ring (0.5 at the source) and the core (1.0) swap levels; identity + negation starts only, no random
    // curves, so that only the band search can find the reordering.
    const { target, labels } = ringCoreSwapped();
    const base = { seed: 2, steps: 10, randomStarts: 0 };
    unet.setWeights(sourceWeights);
    // Act
    const without = fitInputAdapter(unet, target, stats, { ...base, bandPermutations: false });
    const fit = fitInputAdapter(unet, target, stats, { ...base, bandPermutations: { bands: 3, refine: 1 } });
    // Assert: the model is untouched, the narrow candidates are unchanged, the swap [0, 2, 1] is found and taken.
    expect(unet.getWeights()).toEqual(sourceWeights);
    expect(fit.candidates.slice(0, 2).map((c) => c.score)).toEqual(without.candidates.map((c) => c.score));
    expect(fit.candidates[2]).toMatchObject({ start: 'band-permutation', search: 'bands', permutation: [0, 2, 1] });
    expect(fit.chosen).toBe(2);
    expect(fit.note).toMatch(/; band permutations \(M=3, .*\): took \[0,2,1\], objective [0-9.]+ < [0-9.]+, entropy after AdaBN/);
    const dice = (curve: typeof fit.curve): number => meanDice(unet, applyCurve(curve, target), labels, 3);
    expect(dice(fit.curve)).toBeGreaterThan(0.85);
    expect(dice(fit.curve)).toBeGreaterThan(dice(without.curve) + 0.2);
  });

  it('does not reorder a target whose band order did not change', () => {
    // Arrange: the source's own scanner (background 0 < ring 0.5 < core 1.0).
    const ds = makeNestedBoxes(16, TOY_SIZE, 7);
    const target = toUnlabeled(ds);
    unet.setWeights(sourceWeights);
    // Act
    const fit = fitInputAdapter(unet, target, stats, { seed: 2, steps: 10, randomStarts: 0, bandPermutations: { bands: 3 } });
    // Assert: whichever candidate won, the curve keeps the three levels in their order and segments as well as the identity.
    expect(fit.note).toMatch(/; band permutations \(M=3, band means 0.0\d < 0.\d\d < 1.0\d; /);
    expect(evalCurve(fit.curve, 0)).toBeLessThan(evalCurve(fit.curve, 0.5));
    expect(evalCurve(fit.curve, 0.5)).toBeLessThan(evalCurve(fit.curve, 1));
    expect(meanDice(unet, applyCurve(fit.curve, target), ds.labels, 3)).toBeGreaterThan(0.85);
  });

  it('is opt-in: off by default and for the polarity check', () => {
    const target = toUnlabeled(makeNestedBoxes(8, TOY_SIZE, 7));
    unet.setWeights(sourceWeights);
    const base = { seed: 2, steps: 2, randomStarts: 0 };
    expect(fitInputAdapter(unet, target, stats, base).candidates.map((c) => c.search)).toEqual(['narrow', 'narrow']);
    expect(fitInputAdapter(unet, target, stats, { ...base, bandPermutations: {} }).candidates.map((c) => c.search)).toEqual(['narrow', 'narrow', 'bands', 'bands']);
    expect(fitInputAdapter(unet, target, stats, POLARITY_CHECK).candidates.map((c) => c.search)).toEqual(['narrow', 'narrow']);
  });

  it("selection 'restart-agreement' scores the same candidates, takes the swap that segments, and says why", () => {
    // Arrange: the ring / core swap of the first test.
    const { target, labels } = ringCoreSwapped();
    const base = { seed: 2, steps: 10, randomStarts: 0 };
    unet.setWeights(sourceWeights);
    // Act
    const guard = fitInputAdapter(unet, target, stats, { ...base, bandPermutations: { bands: 3, refine: 2 } });
    const agree = fitInputAdapter(unet, target, stats, { ...base, bandPermutations: { bands: 3, refine: 2, selection: 'restart-agreement', agreement: { restarts: 2, steps: 5 } } });
    // Assert: the selection changes the pick only, never the candidates; the model is untouched.
    expect(unet.getWeights()).toEqual(sourceWeights);
    expect(agree.candidates.map((c) => c.score)).toEqual(guard.candidates.map((c) => c.score));
    expect(agree.note).toMatch(/restart agreement \(2 re-fits, sigma 0.3, 5 steps\) pick [0-9.]+, \[0,2,1\] [0-9.]+/);
    expect(agree.note).toMatch(/; most stable \[0,2,1\]: entropy after AdaBN [0-9.]+ <= [0-9.]+$/);
    expect(agree.candidates[agree.chosen].permutation).toEqual([0, 2, 1]);
    expect(meanDice(unet, applyCurve(agree.curve, target), labels, 3)).toBeGreaterThan(0.85);
  });

  it('restart agreement: 1 for a curve that re-fits onto itself, lower for a constant curve whose re-fits scatter; deterministic', () => {
    const ds = makeNestedBoxes(8, TOY_SIZE, 7);
    const target = toUnlabeled(ds);
    unet.setWeights(sourceWeights);
    const tg = sourceTargets(unet, stats, 0, 1000);
    const o = { steps: 5, lr: 0.05, randomStarts: 0, screen: 0, batchSize: 8, entropyWeight: 0, priorWeight: 0 };
    try {
      const identity = identityCurve([0, 0.5, 1]);
      // A vanishing perturbation and one tiny step: every re-fit segments exactly as the identity does.
      expect(restartAgreement(unet, target, tg, { ...o, lr: 1e-6 }, identity, { restarts: 2, sigma: 1e-6, steps: 1 }, new Rng(1)).agreement).toBe(1);
      // A flat curve (everything one grey level) has no structure to come back to: its re-fits from large
      // perturbations land on different segmentations.
      const flat = makeCurve([0, 0.5, 1], [0.5, 0.5, 0.5]);
      const a = restartAgreement(unet, target, tg, o, flat, { restarts: 3, sigma: 1, steps: 5 }, new Rng(1));
      const b = restartAgreement(unet, target, tg, o, flat, { restarts: 3, sigma: 1, steps: 5 }, new Rng(1));
      expect(a).toEqual(b);
      expect(a.agreement).toBeLessThan(0.9);
      expect(unet.getWeights()).toEqual(sourceWeights);
      expect(labelsAfterAdaBn(unet, target, identity, 8)).toHaveLength(ds.labels.length);
      expect(unet.getWeights()).toEqual(sourceWeights);
    } finally {
      disposeTargets(tg);
    }
  });

  it('refuses bad options with typed errors', () => {
    const target = toUnlabeled(makeNestedBoxes(4, TOY_SIZE, 7));
    for (const bad of [{ restarts: 0 }, { sigma: 0 }, { steps: 0 }]) expect(() => resolveRestartAgreement(bad, 40)).toThrow(expect.objectContaining({ code: 'BAD_OPTION' }));
    for (const bad of [{ bands: 1 }, { bands: 9 }, { refine: 0 }, { maxPermutations: 0 }, { bandQuantiles: [0.9, 0.1] }, { selection: 'entropy' }, { agreement: { restarts: 0 } }]) {
      expect(() => fitInputAdapter(unet, target, stats, { steps: 0, bandPermutations: bad as never })).toThrow(expect.objectContaining({ code: 'BAD_OPTION' }));
    }
  });
});
