import { describe, expect, it } from 'vitest';
import { augmentDataset } from '../../site-agent/training/index.ts';
import { generateSiteData } from '../phantoms/index.ts';
import { augmentInRound, roundData } from './federated-source.ts';

describe('federated source: augmentation schedule', () => {
  it('says per round what the sites train on', () => {
    const rounds = [1, 2, 3, 4, 5];
    expect(rounds.map((r) => augmentInRound(undefined, r))).toEqual(Array(5).fill('augmented'));
    expect(rounds.map((r) => augmentInRound({ kind: 'every' }, r))).toEqual(Array(5).fill('augmented'));
    expect(rounds.map((r) => augmentInRound({ kind: 'from-round', from: 4 }, r))).toEqual(['plain', 'plain', 'plain', 'augmented', 'augmented']);
    expect(rounds.map((r) => augmentInRound({ kind: 'alternate' }, r))).toEqual(['plain', 'augmented', 'plain', 'augmented', 'plain']);
    expect(rounds.map((r) => augmentInRound({ kind: 'mixed' }, r))).toEqual(Array(5).fill('plain+augmented'));
  });

  it('builds the round data: plain slices untouched, the default schedule bit for bit the old augmented copy, mixed = plain then augmented', () => {
    const site = generateSiteData({ seed: 3, numCases: 2, slicesPerCase: 2, size: 12, numClasses: 3, shift: 'scanner-a' });
    const aug = { prob: 1, gammaMax: 1.6, contrast: 0.3, brightness: 0.15, blurMax: 1, noiseMax: 0.05 };
    expect(roundData(site, undefined, { kind: 'mixed' }, 1, 7)).toBe(site);
    expect(roundData(site, aug, { kind: 'from-round', from: 2 }, 1, 7)).toBe(site);
    const old = augmentDataset(site, aug, 7);
    expect(roundData(site, aug, undefined, 1, 7).images).toEqual(old.images);
    expect(roundData(site, aug, { kind: 'alternate' }, 2, 7).images).toEqual(old.images);
    const mixed = roundData(site, aug, { kind: 'mixed' }, 1, 7);
    const px = site.height * site.width;
    expect(mixed.n).toBe(2 * site.n);
    expect(mixed.images.subarray(0, site.n * px)).toEqual(site.images);
    expect(mixed.images.subarray(site.n * px)).toEqual(old.images);
    expect(mixed.labels.subarray(site.n * px)).toEqual(site.labels);
    expect(old.images).not.toEqual(site.images);
  });
});
