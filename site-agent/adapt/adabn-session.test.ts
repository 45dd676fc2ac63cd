import { beforeAll, describe, expect, it } from 'vitest';
import { initEngine } from '../engine/index.ts';
import { createUNet } from '../model/index.ts';
import { adaptAdaBN } from './adabn.ts';
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
});
