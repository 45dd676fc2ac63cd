/**
 * Adaptation of the GroupNorm U-Net (the model DP-SGD sites train): TENT adapts the group-norm scales and shifts;
 * methods that re-estimate batch-norm statistics refuse it by name instead of silently doing nothing.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { initEngine } from '../engine/index.ts';
import { createUNet } from '../model/index.ts';
import { adapt } from './adapt.ts';
import { AdaptError } from './adapt-error.ts';
import { makeNestedBoxes, TOY_SIZE } from './toy-shift-fixture.ts';
import { toUnlabeled } from './unlabeled-slices.ts';

const GN = { inChannels: 1, numClasses: 3, baseChannels: 4, depth: 1, normalization: 'group' } as const;

beforeAll(async () => {
  await initEngine({ backend: 'cpu' });
});

describe('adapting a group-norm model', () => {
  it('TENT changes the group-norm gamma/beta and nothing else', () => {
    const unet = createUNet(GN, 3);
    const before = new Map(unet.getWeights().map((t) => [t.name, Float32Array.from(t.data)]));
    const report = adapt('tent', unet, toUnlabeled(makeNestedBoxes(8, TOY_SIZE, 5, -1, 0.5)), null, { epochs: 1, batchSize: 4 });
    expect(report.steps).toBeGreaterThan(0);
    expect(report.notes.join(' ')).toMatch(/group-norm/);
    const changed = unet.getWeights().filter((t) => t.data.some((x, i) => x !== before.get(t.name)![i])).map((t) => t.name);
    expect(changed.length).toBeGreaterThan(0);
    expect(changed.every((n) => /\.gn\d+\.(gamma|beta)$/.test(n))).toBe(true);
    unet.dispose();
  });

  it.each(['adabn', 'osuda'] as const)('%s refuses with NEEDS_BATCH_NORM', (method) => {
    const unet = createUNet(GN, 3);
    let err: unknown;
    try {
      adapt(method, unet, toUnlabeled(makeNestedBoxes(4, TOY_SIZE, 6)), null, {});
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(AdaptError);
    expect((err as AdaptError).code).toBe('NEEDS_BATCH_NORM');
    unet.dispose();
  });
});
