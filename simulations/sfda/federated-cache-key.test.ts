import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { parseSfdaSuiteConfig } from './suite-config.ts';
import { configuredRecipe, federatedCacheKey } from './suite-run.ts';

describe('federated source-model cache key', () => {
  it('depends on the source recipe only: not on the target families or the target-supervised reference', async () => {
    // Arrange: the shipped suite (mricron: augmented source recipe and its own reference settings).
    const cfg = parseSfdaSuiteConfig(JSON.parse(await readFile(new URL('../scenarios/sfda-suite.json', import.meta.url), 'utf8')));
    const d = cfg.datasets.find((x) => x.name === 'mricron')!;
    const fed = configuredRecipe(cfg, d);
    // Act
    const key = federatedCacheKey(cfg, fed, d, 101);
    // Assert: the configured recipe carries the dataset's augmentation; the key ignores families and the reference,
    // and tells the augmented model from the plain one and one seed from another.
    expect(fed.augment).toEqual(d.sourceAugment);
    expect(federatedCacheKey(cfg, fed, { ...d, families: [], targetSupervised: undefined }, 101)).toBe(key);
    expect(federatedCacheKey(cfg, { ...fed, augment: undefined }, d, 101)).not.toBe(key);
    expect(federatedCacheKey(cfg, fed, { ...d, model: { ...cfg.model, baseChannels: 16 } }, 101)).not.toBe(key);
    expect(federatedCacheKey(cfg, fed, d, 102)).not.toBe(key);
  });
});
