import { describe, expect, it } from 'vitest';
import { Rng } from '../../protocol/common/index.ts';
import { generateSiteData } from '../../simulations/phantoms/index.ts';
import { augmentDataset, augmentSlice, IntensityAugmentSchema, roundAugmenter } from './intensity-augment.ts';

describe('source intensity augmentation', () => {
  const ds = generateSiteData({ seed: 3, numCases: 1, slicesPerCase: 2, size: 16, numClasses: 3, shift: 'scanner-a' });

  it('is seeded, copies the images and leaves labels alone', () => {
    const o = IntensityAugmentSchema.parse({ prob: 1 });
    const a = augmentDataset(ds, o, 7);
    const b = augmentDataset(ds, o, 7);
    const c = augmentDataset(ds, o, 8);
    expect(a.images).toEqual(b.images);
    expect(a.images).not.toEqual(c.images);
    expect(a.images).not.toEqual(ds.images);
    expect(a.labels).toBe(ds.labels);
  });

  it('gamma alone is monotone increasing: it never inverts the contrast', () => {
    const o = IntensityAugmentSchema.parse({ prob: 1, contrast: 0, brightness: 0, blurMax: 0, noiseMax: 0, gammaMax: 3 });
    const rng = new Rng(1);
    for (let trial = 0; trial < 5; trial++) {
      const img = Float32Array.from({ length: 64 }, (_, i) => i / 10 - 2);
      augmentSlice(img, 8, 8, o, rng);
      for (let i = 1; i < img.length; i++) expect(img[i]).toBeGreaterThanOrEqual(img[i - 1]);
      expect(img[0]).toBeCloseTo(-2, 5);
      expect(img[63]).toBeCloseTo(4.3, 5);
    }
  });

  it('prob 0 is the identity and bad options are refused', () => {
    const img = Float32Array.from({ length: 16 }, (_, i) => i);
    augmentSlice(img, 4, 4, IntensityAugmentSchema.parse({ prob: 0 }), new Rng(2));
    expect([...img]).toEqual(Array.from({ length: 16 }, (_, i) => i));
    expect(IntensityAugmentSchema.safeParse({ contrast: 2 }).success).toBe(false);
  });

  it('augments each channel of a multi-channel slice on its own, and the per-round augmenter is seeded by round', () => {
    const px = 16 * 16;
    const two = { ...ds, channels: 2, images: new Float32Array(ds.n * px * 2) };
    // Channel 0 is the phantom, channel 1 its negative: interleaved NHWC.
    for (let s = 0; s < ds.n; s++) for (let i = 0; i < px; i++) {
      two.images[(s * px + i) * 2] = ds.images[s * px + i];
      two.images[(s * px + i) * 2 + 1] = -ds.images[s * px + i];
    }
    const o = IntensityAugmentSchema.parse({ prob: 1 });
    const a = augmentDataset(two, o, 5);
    const ch = (d: typeof a, c: number) => Array.from({ length: ds.n * px }, (_, k) => d.images[k * 2 + c]);
    expect(ch(a, 0)).not.toEqual(ch(two, 0));
    expect(ch(a, 1)).not.toEqual(ch(two, 1));
    // Independent draws: channel 1 is no longer the negative of channel 0.
    expect(ch(a, 1)).not.toEqual(ch(a, 0).map((v) => -v));
    expect(a.images.every(Number.isFinite)).toBe(true);
    const perRound = roundAugmenter(o, 9);
    expect(perRound(ds, 2).images).toEqual(augmentDataset(ds, o, 9 * 7919 + 2 * 31).images);
    expect(perRound(ds, 2).images).not.toEqual(perRound(ds, 3).images);
  });
});
