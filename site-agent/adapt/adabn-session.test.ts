import { beforeAll, describe, expect, it } from 'vitest';
import { initEngine } from '../engine/index.ts';
import { createUNet } from '../model/index.ts';
import { adaptAdaBN } from './adabn.ts';
import { AdaBnSession } from './adabn-session.ts';
import { AdaptError } from './adapt-error.ts';
import { targetBnMomentSums } from './joint-bn-moments.ts';
import { JointTargetSite } from './joint-target-site.ts';
import { makeNestedBoxes, TOY_CONFIG, TOY_SIZE } from './toy-shift-fixture.ts';
import { toUnlabeled } from './unlabeled-slices.ts';

beforeAll(async () => {
  await initEngine();
});

describe("the joint site's adabn method", () => {
  it('sends no statistics, trains nothing and ends with exactly AdaBN on its target', () => {
    // Arrange
    const target = toUnlabeled(makeNestedBoxes(8, TOY_SIZE, 21, 1.4, 0.2));
    const u = createUNet(TOY_CONFIG, 5);
    const reference = createUNet(TOY_CONFIG, 5);
    adaptAdaBN(reference, target, { batchSize: 4 });
    const site = new JointTargetSite(u, target, null, { method: 'adabn', batchSize: 4, seed: 1 });
    // Act
    const sent = site.statistics(1e-3);
    site.train(null, 10);
    site.finish();
    // Assert
    expect(site.method).toBe('adabn');
    expect(sent).toEqual({});
    expect(site.current).toBe(u);
    const want = new Map(reference.getWeights().map((t) => [t.name, t.data]));
    for (const t of u.getWeights()) expect(Array.from(t.data)).toEqual(Array.from(want.get(t.name)!));
    u.dispose();
    reference.dispose();
  });

  it('with sourceBnWeight α_s ends with the moments of α_s · source + (1 - α_s) · target (α-BN), and refuses α_s outside [0, 1)', () => {
    // Arrange
    const target = toUnlabeled(makeNestedBoxes(8, TOY_SIZE, 22, 0.7, 0.3));
    const u = createUNet(TOY_CONFIG, 6);
    const layer = u.bnLayers[0];
    const muS = Array.from(u.bnStats.get(`${layer}.mean`)!.dataSync());
    const varS = Array.from(u.bnStats.get(`${layer}.var`)!.dataSync());
    const t = targetBnMomentSums(u, target, 8).layers.get(layer)!;
    const a = 0.3;
    // Act
    new AdaBnSession(u, target, 8, a).finish();
    // Assert: mean a μ_s + (1 - a) μ_t; variance E[x²] - mean² of the mixture.
    const mean = Array.from(u.bnStats.get(`${layer}.mean`)!.dataSync());
    const variance = Array.from(u.bnStats.get(`${layer}.var`)!.dataSync());
    muS.forEach((m, k) => {
      const muT = t.sum[k] / 8;
      const want = a * m + (1 - a) * muT;
      expect(mean[k]).toBeCloseTo(want, 4);
      expect(variance[k]).toBeCloseTo(a * (varS[k] + m * m) + ((1 - a) * t.sumSq[k]) / 8 - want * want, 3);
    });
    for (const bad of [1, -0.1, Number.NaN]) expect(() => new AdaBnSession(u, target, 8, bad)).toThrow(AdaptError);
    u.dispose();
  });
});
