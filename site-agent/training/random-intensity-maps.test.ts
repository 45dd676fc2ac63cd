import { describe, expect, it } from 'vitest';
import { Rng } from '../../protocol/common/index.ts';
import { generateSiteData } from '../../simulations/phantoms/index.ts';
import { augmentDataset, IntensityAugmentSchema } from './intensity-augment.ts';
import { biasFieldSlice, GinSchema, ginSlice, smoothRandomField } from './random-intensity-maps.ts';
import { parseSfdaSuiteConfig } from '../../simulations/sfda/suite-config.ts';
import suiteFile from '../../simulations/scenarios/sfda-suite.json' with { type: 'json' };

const ds = generateSiteData({ seed: 3, numCases: 1, slicesPerCase: 2, size: 16, numClasses: 3, shift: 'scanner-a' });
const ramp = (): Float32Array => Float32Array.from({ length: 64 }, (_, i) => i / 63);
const moments = (x: Float32Array): { mean: number; std: number } => {
  const mean = x.reduce((a, v) => a + v, 0) / x.length;
  return { mean, std: Math.sqrt(x.reduce((a, v) => a + (v - mean) ** 2, 0) / x.length) };
};
const direction = (x: Float32Array): { up: boolean; down: boolean } => {
  let up = false;
  let down = false;
  for (let i = 1; i < x.length; i++) {
    if (x[i] > x[i - 1] + 1e-4) up = true;
    if (x[i] < x[i - 1] - 1e-4) down = true;
  }
  return { up, down };
};
const all = { prob: 1, gin: { prob: 1, ipaProb: 0.5 }, biasField: { prob: 1 } };

describe('domain randomisation: GIN, IPA and a random bias field', () => {
  it('with the new options off, the output is the old one bit for bit (pinned from main f47945c)', () => {
    // Values printed by the pre-GIN intensity-augment.ts for this dataset, options {prob: 1} and seed 7.
    const a = augmentDataset(ds, IntensityAugmentSchema.parse({ prob: 1 }), 7);
    expect([a.images[0], a.images[100], a.images[300], a.images[511]]).toEqual([-0.9872700572013855, 2.069774627685547, -0.8027690649032593, -0.7651032209396362]);
    expect(a.images.reduce((s, v) => s + v, 0)).toBe(-2.507814049720764);
  });

  it('is deterministic per seed, finite, changes the images and never touches the labels', () => {
    const o = IntensityAugmentSchema.parse(all);
    const a = augmentDataset(ds, o, 11);
    const b = augmentDataset(ds, o, 11);
    const c = augmentDataset(ds, o, 12);
    expect(a.images).toEqual(b.images);
    expect(a.images).not.toEqual(c.images);
    expect(a.images).not.toEqual(augmentDataset(ds, IntensityAugmentSchema.parse({ prob: 1 }), 11).images);
    expect(a.labels).toBe(ds.labels);
    expect(a.images.every(Number.isFinite)).toBe(true);
    for (let seed = 1; seed <= 30; seed++) expect(augmentDataset(ds, o, seed).images.every(Number.isFinite)).toBe(true);
  });

  it('GIN can map intensities non-monotonically (pointwise net, seed 4) and keeps the slice mean and std', () => {
    const o = GinSchema.parse({ prob: 1, kernelSizes: [1] });
    const img = ramp();
    ginSlice(img, 8, 8, o, new Rng(4));
    expect(direction(img)).toEqual({ up: true, down: true });
    const before = moments(ramp());
    const after = moments(img);
    expect(after.mean).toBeCloseTo(before.mean, 5);
    expect(after.std).toBeCloseTo(before.std, 5);
  });

  it('IPA makes the intensity map spatially varying: equal inputs get different outputs across the slice', () => {
    // Two halves with the same intensities: a global map (GIN) maps them alike, a blended one (IPA) does not.
    const o = GinSchema.parse({ prob: 1, kernelSizes: [1], ipaProb: 1 });
    const img = Float32Array.from({ length: 16 * 16 }, (_, i) => (i % 16) / 15);
    const global = Float32Array.from(img);
    ginSlice(global, 16, 16, { ...o, ipaProb: 0 }, new Rng(4));
    expect(global[0 * 16 + 5]).toBeCloseTo(global[15 * 16 + 5], 5);
    ginSlice(img, 16, 16, o, new Rng(4));
    expect(Math.abs(img[0 * 16 + 5] - img[15 * 16 + 5])).toBeGreaterThan(1e-3);
  });

  it('the smooth random field is bounded and changes by at most (hi - lo)(grid - 1)/(size - 1) per pixel', () => {
    const h = 24;
    const w = 32;
    const f = smoothRandomField(h, w, 4, 0, 1, new Rng(5));
    expect(Math.min(...f)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...f)).toBeLessThanOrEqual(1);
    expect(Math.max(...f) - Math.min(...f)).toBeGreaterThan(0.1);
    let dy = 0;
    let dx = 0;
    for (let i = 0; i < h; i++) {
      for (let j = 0; j < w; j++) {
        if (i > 0) dy = Math.max(dy, Math.abs(f[i * w + j] - f[(i - 1) * w + j]));
        if (j > 0) dx = Math.max(dx, Math.abs(f[i * w + j] - f[i * w + j - 1]));
      }
    }
    expect(dy).toBeLessThanOrEqual(3 / (h - 1) + 1e-6);
    expect(dx).toBeLessThanOrEqual(3 / (w - 1) + 1e-6);
  });

  it('the bias field multiplies smoothly, keeps the slice mean and std, and leaves a constant slice alone', () => {
    const o = { prob: 1, strengthMax: 1, grid: 3 };
    const img = Float32Array.from(ds.images.subarray(0, 256));
    const before = moments(img);
    biasFieldSlice(img, 16, 16, o, new Rng(9));
    expect(img).not.toEqual(ds.images.subarray(0, 256));
    expect(moments(img).mean).toBeCloseTo(before.mean, 4);
    expect(moments(img).std).toBeCloseTo(before.std, 4);
    const flat = new Float32Array(64).fill(0.3);
    biasFieldSlice(flat, 8, 8, o, new Rng(9));
    ginSlice(flat, 8, 8, GinSchema.parse({ prob: 1 }), new Rng(9));
    expect(flat.every((v) => v === Math.fround(0.3))).toBe(true);
  });

  it('the suite takes federated.augment (off when absent: the cache key of an unaugmented model is unchanged)', () => {
    const plain = parseSfdaSuiteConfig(suiteFile);
    expect('augment' in plain.federated).toBe(false);
    expect(JSON.stringify(plain.federated)).toBe(JSON.stringify(suiteFile.federated));
    const withAug = parseSfdaSuiteConfig({ ...suiteFile, federated: { ...suiteFile.federated, augment: { prob: 0, gin: { ipaProb: 1 } } } });
    expect(withAug.federated.augment?.gin?.ipaProb).toBe(1);
    expect(withAug.federated.augment?.biasField).toBeUndefined();
    expect(() => parseSfdaSuiteConfig({ ...suiteFile, federated: { ...suiteFile.federated, augment: { gin: { kernelSizes: [5] } } } })).toThrow();
  });
});
