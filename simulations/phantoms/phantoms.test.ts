import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkPath } from '../../site-agent/data/cli/index.ts';
import { loadSiteDataset } from '../../site-agent/data/dataset/index.ts';
import type { SliceDataset } from '../../site-agent/data/slice-dataset.ts';
import {
  generatePhantomVolume,
  generateSiteData,
  PhantomError,
  resolveScannerShift,
  ScannerShiftOrPresetSchema,
  SCANNER_PRESET_NAMES,
  writePhantomDatasets,
} from './index.ts';
import type { GenerateSiteDataOptions } from './index.ts';

const base: GenerateSiteDataOptions = { seed: 7, numCases: 3, slicesPerCase: 4, size: 32, numClasses: 4, shift: 'scanner-a' };

function classMeans(ds: SliceDataset): number[] {
  const sum = new Array(ds.numClasses).fill(0);
  const cnt = new Array(ds.numClasses).fill(0);
  for (let i = 0; i < ds.labels.length; i++) {
    sum[ds.labels[i]] += ds.images[i];
    cnt[ds.labels[i]]++;
  }
  return sum.map((s, k) => s / cnt[k]);
}

/**
 * Mean foreground Dice of the best pixel-wise intensity classifier fitted on `train` (majority class per
 * intensity bin): a crude stand-in for a segmenter, enough to show whether a shift breaks what was learned.
 */
function intensityClassifierDice(train: SliceDataset, test: SliceDataset): number {
  const bins = 64;
  const bin = (v: number): number => Math.min(bins - 1, Math.max(0, Math.floor(((v + 3) / 6) * bins)));
  const counts = new Float64Array(bins * train.numClasses);
  for (let i = 0; i < train.labels.length; i++) counts[bin(train.images[i]) * train.numClasses + train.labels[i]]++;
  const vote = new Uint8Array(bins);
  for (let b = 0; b < bins; b++) {
    let best = 0;
    for (let k = 1; k < train.numClasses; k++) if (counts[b * train.numClasses + k] > counts[b * train.numClasses + best]) best = k;
    vote[b] = best;
  }
  const inter = new Array(test.numClasses).fill(0);
  const sizes = new Array(test.numClasses).fill(0);
  for (let i = 0; i < test.labels.length; i++) {
    const p = vote[bin(test.images[i])];
    const y = test.labels[i];
    sizes[y]++;
    sizes[p]++;
    if (p === y) inter[y]++;
  }
  let d = 0;
  for (let k = 1; k < test.numClasses; k++) d += (2 * inter[k]) / Math.max(1, sizes[k]);
  return d / (test.numClasses - 1);
}

describe('generateSiteData', () => {
  it('is deterministic in the seed and fills the SliceDataset contract', () => {
    const a = generateSiteData(base);
    const b = generateSiteData(base);
    expect(a.n).toBe(12);
    expect(a.images.length).toBe(12 * 32 * 32);
    expect(a.labels.length).toBe(12 * 32 * 32);
    expect(a.channels).toBe(1);
    expect(a.spacing[0]).toBeCloseTo(200 / 32);
    expect(a.caseIds).toEqual([...Array(3)].flatMap((_, c) => Array(4).fill(`phantom-7-00${c}`)));
    expect(Buffer.from(a.images.buffer).equals(Buffer.from(b.images.buffer))).toBe(true);
    expect(Buffer.from(a.labels.buffer).equals(Buffer.from(b.labels.buffer))).toBe(true);
    const c = generateSiteData({ ...base, seed: 8 });
    expect(Buffer.from(a.labels.buffer).equals(Buffer.from(c.labels.buffer))).toBe(false);
  });

  it('contains every class, with nested and neighbouring structures', () => {
    for (const K of [2, 3, 4, 6, 9, 16]) {
      const ds = generateSiteData({ ...base, numClasses: K, numCases: 4 });
      const seen = new Set(ds.labels);
      expect([...seen].sort((x, y) => x - y)).toEqual([...Array(K).keys()]);
    }
  });

  it('classPresence drops structures per case (label skew) and leaves cases without it unchanged', () => {
    const opts = { ...base, numCases: 40, slicesPerCase: 4 };
    const all = generateSiteData(opts);
    const always = generateSiteData({ ...opts, classPresence: [1, 1, 1] });
    expect(Buffer.from(always.labels.buffer).equals(Buffer.from(all.labels.buffer))).toBe(true);
    expect(Buffer.from(always.images.buffer).equals(Buffer.from(all.images.buffer))).toBe(true);
    const skewed = generateSiteData({ ...opts, classPresence: [1, 0.5, 0] });
    const px = 4 * 32 * 32;
    let withCavity = 0;
    for (let c = 0; c < 40; c++) {
      const lab = skewed.labels.subarray(c * px, (c + 1) * px);
      const ref = all.labels.subarray(c * px, (c + 1) * px);
      expect(lab.includes(3)).toBe(false); // probability 0: never
      expect(lab.includes(1)).toBe(ref.includes(1)); // probability 1: as before
      if (lab.includes(2)) withCavity++;
      // An absent structure becomes background; nothing else changes.
      for (let i = 0; i < px; i++) if (lab[i] !== ref[i]) expect(lab[i]).toBe(0);
    }
    expect(withCavity).toBeGreaterThan(8);
    expect(withCavity).toBeLessThan(32);
    expect(() => generateSiteData({ ...opts, classPresence: [1, 1] })).toThrow(/classPresence must list 3/);
    expect(() => generateSiteData({ ...opts, classPresence: [1, 2, 1] })).toThrow(PhantomError);
  });

  it('z-scores each case', () => {
    const ds = generateSiteData({ ...base, shift: 'scanner-b' });
    const px = 4 * 32 * 32;
    for (let c = 0; c < 3; c++) {
      const v = ds.images.subarray(c * px, (c + 1) * px);
      const mean = v.reduce((s, x) => s + x, 0) / px;
      const sd = Math.sqrt(v.reduce((s, x) => s + (x - mean) ** 2, 0) / px);
      expect(Math.abs(mean)).toBeLessThan(1e-4);
      expect(sd).toBeCloseTo(1, 3);
    }
  });

  it('keeps the anatomy fixed across shifts (same seed, different scanner)', () => {
    const a = generateSiteData(base);
    for (const name of SCANNER_PRESET_NAMES) {
      const t = generateSiteData({ ...base, shift: name });
      expect(Buffer.from(t.labels.buffer).equals(Buffer.from(a.labels.buffer))).toBe(true);
    }
  });

  it('mr-to-ct inverts tissue contrast and defeats a classifier fitted on scanner-a', () => {
    const opts = { ...base, numCases: 4 };
    const a = generateSiteData(opts);
    const a2 = generateSiteData({ ...opts, seed: 99 });
    const ct = generateSiteData({ ...opts, seed: 99, shift: 'mr-to-ct' });
    const ma = classMeans(a);
    const mct = classMeans(ct);
    // The wall (1) is brighter than the cavity (2) on scanner-a and darker under the inversion.
    expect(ma[1]).toBeGreaterThan(ma[2]);
    expect(mct[1]).toBeLessThan(mct[2]);
    const inDomain = intensityClassifierDice(a, a2);
    const shifted = intensityClassifierDice(a, ct);
    expect(inDomain).toBeGreaterThan(0.5);
    expect(shifted).toBeLessThan(inDomain - 0.3);
  });

  it('noise adds high-frequency energy, blur removes it', () => {
    const energy = (ds: SliceDataset): number => {
      let e = 0;
      for (let i = 1; i < ds.images.length; i++) if (i % ds.width !== 0) e += (ds.images[i] - ds.images[i - 1]) ** 2;
      return e / ds.images.length;
    };
    const clean = energy(generateSiteData({ ...base, shift: 'none' }));
    const noisy = energy(generateSiteData({ ...base, shift: { noise: { sigma: 0.15 } } }));
    const blurred = energy(generateSiteData({ ...base, shift: { blur: { sigma: 1.5 } } }));
    const lowres = energy(generateSiteData({ ...base, shift: { resolution: { factor: 3 } } }));
    expect(noisy).toBeGreaterThan(2 * clean);
    expect(blurred).toBeLessThan(0.7 * clean);
    expect(lowres).toBeLessThan(0.7 * clean);
  });

  it('gamma and bias field change the intensity distribution but not the labels', () => {
    const none = generateSiteData({ ...base, shift: 'none' });
    const g = generateSiteData({ ...base, shift: { gamma: 2.5 } });
    const bf = generateSiteData({ ...base, shift: { biasField: { strength: 1 } } });
    const diff = (x: SliceDataset): number => x.images.reduce((s, v, i) => s + Math.abs(v - none.images[i]), 0) / x.images.length;
    expect(diff(g)).toBeGreaterThan(0.05);
    expect(diff(bf)).toBeGreaterThan(0.05);
    // ...but not the labels: the anatomy (hence every label pixel) is the same under both shifts.
    for (const shifted of [g, bf]) {
      expect(shifted.labels.length).toBe(none.labels.length);
      expect(Buffer.from(shifted.labels.buffer).equals(Buffer.from(none.labels.buffer))).toBe(true);
    }
    expect(new Set(none.labels).size).toBeGreaterThan(1);
  });

  it('rejects bad options with a typed error', () => {
    const bad: Array<Partial<GenerateSiteDataOptions> & Record<string, unknown>> = [
      { numCases: 0 },
      { slicesPerCase: 1.5 },
      { size: 2 },
      { numClasses: 1 },
      { numClasses: 17 },
      { seed: Number.NaN },
      { shift: 'scanner-z' as never },
      { shift: { gamma: -1 } },
      { shift: { intensityMap: { kind: 'piecewise', points: [[1, 0], [0, 1]] } } as never },
      { numCases: 100000, size: 4096 },
    ];
    for (const b of bad) {
      let err: unknown;
      try {
        generateSiteData({ ...base, ...b } as GenerateSiteDataOptions);
      } catch (e) {
        err = e;
      }
      expect(err, JSON.stringify(b)).toBeInstanceOf(PhantomError);
      expect((err as PhantomError).code).toBe('INVALID_PHANTOM_OPTIONS');
    }
  });

  it('exposes the shift schema for scenario files', () => {
    expect(ScannerShiftOrPresetSchema.safeParse('mr-to-ct').success).toBe(true);
    expect(ScannerShiftOrPresetSchema.safeParse({ intensityMap: { kind: 'invert' }, noise: { sigma: 0.1 } }).success).toBe(true);
    expect(ScannerShiftOrPresetSchema.safeParse({ noise: { sigma: 0.1 }, extra: 1 }).success).toBe(false);
    expect(resolveScannerShift('mr-to-ct').intensityMap).toEqual({ kind: 'invert' });
  });
});

describe('generatePhantomVolume', () => {
  it('returns an x-fastest volume with anisotropic spacing, deterministic, empty at the z ends', () => {
    const v = generatePhantomVolume({ seed: 3, dims: [20, 24, 16], spacing: [1, 1.5, 3], numClasses: 4, shift: 'scanner-b' });
    expect(v.dims).toEqual([20, 24, 16]);
    expect(v.spacing).toEqual([1, 1.5, 3]);
    expect(v.image.length).toBe(20 * 24 * 16);
    const w = generatePhantomVolume({ seed: 3, dims: [20, 24, 16], spacing: [1, 1.5, 3], numClasses: 4, shift: 'scanner-b' });
    expect(Buffer.from(v.image.buffer).equals(Buffer.from(w.image.buffer))).toBe(true);
    const plane = 20 * 24;
    expect(v.label.subarray(0, plane).every((l) => l === 0)).toBe(true);
    expect(new Set(v.label.subarray(8 * plane, 9 * plane)).size).toBeGreaterThan(2);
    expect(() => generatePhantomVolume({ seed: 1, dims: [0, 2, 2], numClasses: 4, shift: 'none' })).toThrow(PhantomError);
  });
});

describe('writePhantomDatasets', () => {
  it('writes Decathlon folders per site that pass the dataset checks and load back', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'fedsfda-phantom-ds-'));
    try {
      const sites = await writePhantomDatasets({ out: dir, sites: 2, casesPerSite: 2, dims: [16, 16, 6], spacing: [2, 2, 5], scanners: ['scanner-a', 'mr-to-ct'] });
      expect(sites.map((s) => s.scanner)).toEqual(['scanner-a', 'mr-to-ct']);
      for (const s of sites) {
        expect((await checkPath(s.dir)).ok).toBe(true);
        const site = await loadSiteDataset(s.dir, { size: 16 });
        expect(site.dataset.n).toBe(12);
        expect(site.dataset.spacing).toEqual([2, 2]);
        expect(new Set(site.dataset.labels).size).toBe(4);
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
