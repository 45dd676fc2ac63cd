import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initEngine } from '../engine/index.ts';
import { createUNet, type UNet } from '../model/index.ts';
import { labelFreeScores, type LabelFreeScores } from './label-free-scores.ts';
import { classesVanished, judgeAdaptation } from './safeguard.ts';
import { computeSourceStats } from './source-stats.ts';
import { makeNestedBoxes, TOY_SIZE } from './toy-shift-fixture.ts';
import { toUnlabeled } from './unlabeled-slices.ts';

const scores = (meanDistance?: number[]): LabelFreeScores => ({
  entropy: 0.1,
  priorKl: 0.01,
  consistency: 0.9,
  ...(meanDistance ? { latent: { meanDistance, atypicalFraction: meanDistance.map(() => 0.1), gaussianAgreement: meanDistance.map(() => 0.9) } } : {}),
});

describe('safeguard: latent-feature typicality (opt-in latentTolerance)', () => {
  it('rejects a planted adaptation whose features moved away from their class Gaussians, only when asked and past the tolerance', () => {
    const before = scores([2, 4, NaN]);
    const harmed = scores([3, 6, NaN]); // class mean 3 -> 4.5: +50%
    expect(judgeAdaptation(before, harmed).keep).toBe(true); // off by default
    const v = judgeAdaptation(before, harmed, { latentTolerance: 0.25 });
    expect(v.keep).toBe(false);
    expect(v.code).toBe('FEATURES_UNTYPICAL_OF_CLASS');
    expect(v.reason).toMatch(/latent distance 3\.000 -> 4\.500/);
    expect(judgeAdaptation(before, harmed, { latentTolerance: 0.6 }).keep).toBe(true);
    expect(judgeAdaptation(before, scores([1, 2, NaN]), { latentTolerance: 0 }).keep).toBe(true);
  });

  it('never rejects without latent scores (no source statistics, or no class with a Gaussian)', () => {
    expect(judgeAdaptation(scores(), scores([9, 9]), { latentTolerance: 0 }).keep).toBe(true);
    expect(judgeAdaptation(scores([1, 1]), scores(), { latentTolerance: 0 }).keep).toBe(true);
    expect(judgeAdaptation(scores([NaN, NaN]), scores([9, 9]), { latentTolerance: 0 }).keep).toBe(true);
  });
});

describe('labelFreeScores: latent typicality', () => {
  let unet: UNet;
  beforeAll(async () => {
    await initEngine();
    unet = createUNet({ inChannels: 1, numClasses: 3, baseChannels: 4, depth: 1 }, 5);
  });
  afterAll(() => unet.dispose());

  it('is reported per class with a source package, absent without one, and rises on a brighter, higher-contrast target (gain 3, offset 2)', () => {
    const source = makeNestedBoxes(16, TOY_SIZE, 1);
    const stats = computeSourceStats(unet, source);
    const own = labelFreeScores(unet, toUnlabeled(source), stats);
    expect(own.latent?.meanDistance).toHaveLength(3);
    expect(labelFreeScores(unet, toUnlabeled(source), null).latent).toBeUndefined();
    const shifted = labelFreeScores(unet, toUnlabeled(makeNestedBoxes(16, TOY_SIZE, 1, 3, 2)), stats);
    const mean = (s: LabelFreeScores) => s.latent!.meanDistance.filter(Number.isFinite).reduce((a, b) => a + b, 0);
    expect(mean(shifted)).toBeGreaterThan(mean(own) * 2);
  });
});

describe('classesVanished (the CLASS_VANISHED rule, also the band search guard)', () => {
  it('names a class with prior >= 1% that falls below a tenth of its prior share, only if it was above it before', () => {
    // Arrange: class 3 (prior 0.038) predicted 0.022 -> 0.001 (mricron inversion 102's band order); class 2 was already gone.
    const priors = [0.6, 0.3, 0.062, 0.038];
    const before = [0.6, 0.31, 0.001, 0.022];
    const after = [0.62, 0.31, 0.0005, 0.001];
    // Act / Assert
    expect(classesVanished(priors, before, after)).toEqual([3]);
    expect(classesVanished(priors, before, before)).toEqual([]);
    // A class below 1% prior never counts.
    expect(classesVanished([0.995, 0.005], [0.99, 0.01], [1, 0])).toEqual([]);
  });
});
