import { readFile } from 'node:fs/promises';
import { beforeAll, describe, expect, it } from 'vitest';
import type { SecAggReply } from '../../protocol/secagg/index.ts';
import { addBnMomentSums, adaptAdaBN, choosePooledBn, meanTargetEntropy, setBnFromMomentSums, targetBnMomentSums, toUnlabeled, type UnlabeledSlices } from '../../site-agent/adapt/index.ts';
import { makeNestedBoxes, TOY_CONFIG, TOY_SIZE } from '../../site-agent/adapt/toy-shift-fixture.ts';
import { initEngine } from '../../site-agent/engine/index.ts';
import { createUNet } from '../../site-agent/model/index.ts';
import { MultiTargetError, parseMultiTargetConfig, prepareSeed, runMultiTarget } from './multi-target.ts';
import { expectMaskedWordsUniform, expectNoPlainVectorSeen, expectSecureSumsArePlainSums, maskedWords, smokeScenario } from './multi-target-fixture.ts';

beforeAll(async () => {
  await initEngine();
});

const site = (seed: number, gain: number, offset: number, n = 8): UnlabeledSlices => toUnlabeled(makeNestedBoxes(n, TOY_SIZE, seed, gain, offset));

/** Own AdaBN statistics + ratio-entropy at every site, pooled BN moments and FedBN weights (the mricron scenario's sharing). */
const bnSmoke = (augment: boolean, entropyTolerance = -0.05, adapt?: Parameters<typeof smokeScenario>[0]['adapt']) =>
  smokeScenario({
    name: 'pooled BN smoke',
    sourceSites: [{ shift: 'scanner-a', numCases: 2 }],
    targets: [
      { id: 'site-1', shift: 'low-field', adaptCases: 1, testCases: 1 },
      { id: 'site-2', shift: { noise: { sigma: 0.12 }, blur: { sigma: 0.8 }, resolution: { factor: 2.2 } }, adaptCases: 1, testCases: 1 },
      { id: 'site-3', shift: { gamma: 0.5, noise: { sigma: 0.03 } }, adaptCases: 1, testCases: 1 },
    ],
    federated: { rounds: 2, localEpochs: 1, batchSize: 4, lr: 0.02, ...(augment ? { augment: {} } : {}) },
    adapt: adapt ?? { rounds: 1, batchSize: 4, options: { method: 'ratio-entropy' }, share: { bnMoments: true, keepAlone: true, entropyTolerance } },
  });

describe('the real-anatomy scenario', () => {
  it('validates: mricron anatomy, augmented source, pooled BN moments without a pooled curve; bad options are refused', async () => {
    // Arrange
    const raw = JSON.parse(await readFile(new URL('../scenarios/sfda-multi-target-mricron.json', import.meta.url), 'utf8'));
    // Act
    const cfg = parseMultiTargetConfig(raw);
    // Assert
    expect(cfg.data.anatomy).toBe('mricron');
    expect(cfg.seeds).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(cfg.federated.augment).toMatchObject({ prob: 0.5 });
    expect(cfg.adapt.share).toMatchObject({ inputCurve: false, bnMoments: true });
    expect(() => parseMultiTargetConfig({ ...raw, federated: { ...raw.federated, augment: { gammaMaxx: 2 } } })).toThrow(MultiTargetError);
    expect(() => parseMultiTargetConfig({ ...raw, adapt: { ...raw.adapt, share: { ...raw.adapt.share, entropyTolerance: -1 } } })).toThrow(MultiTargetError);
    const share = (extra: Record<string, unknown>) => ({ ...raw, adapt: { ...raw.adapt, share: { ...raw.adapt.share, ...extra } } });
    for (const bad of [{ bnOwnWeight: 1 }, { bnOwnWeight: -0.1 }, { bnOwnWeight: 0.5, bnMoments: false }]) {
      expect(() => parseMultiTargetConfig(share(bad))).toThrow(/bnOwnWeight/);
    }
    const adabn = (options: Record<string, unknown>, weights: boolean) => ({ ...raw, adapt: { ...raw.adapt, options, share: { ...raw.adapt.share, weights } } });
    expect(parseMultiTargetConfig(adabn({ method: 'adabn' }, false)).adapt.options.method).toBe('adabn');
    expect(() => parseMultiTargetConfig(adabn({ method: 'adabn' }, true))).toThrow(/weights/);
    expect(() => parseMultiTargetConfig(adabn({ method: 'adabn', ratioEntropy: { lr: 1e-4 } }, false))).toThrow(/ratioEntropy/);
    expect(() => parseMultiTargetConfig(adabn({ method: 'adabn', sourceBnWeight: 1 }, false))).toThrow(/sourceBnWeight/);
    expect(() => parseMultiTargetConfig(adabn({ method: 'ratio-entropy', sourceBnWeight: 0.2 }, true))).toThrow(/sourceBnWeight/);
  });
});

describe('the pooled BN check with a required gain (negative entropy tolerance)', () => {
  it('keeps the pooled statistics only when they lower the entropy by at least |tolerance|, and restores its own otherwise', () => {
    // Arrange: the site's own AdaBN sums and sums pooled with a scanner of another gain and offset; whichever of the two
    // gives the higher entropy plays "own", so that the other lowers it.
    const u = createUNet(TOY_CONFIG, 5);
    const mine = site(41, 1, 0);
    adaptAdaBN(u, mine, { batchSize: 8 });
    const a = targetBnMomentSums(u, mine, 8);
    const b = addBnMomentSums([a, targetBnMomentSums(u, site(42, 1.6, 0.3, 8), 8)]);
    const entropy = (s: typeof a): number => (setBnFromMomentSums(u, s), meanTargetEntropy(u, mine, 8));
    const [hi, lo] = entropy(a) > entropy(b) ? [a, b] : [b, a];
    const ratio = entropy(lo) / entropy(hi);
    expect(ratio).toBeLessThan(1);
    setBnFromMomentSums(u, hi);
    const own = u.getWeights();
    // Act
    const same = choosePooledBn(u, mine, hi, -0.05, 8);
    u.setWeights(own);
    const enough = choosePooledBn(u, mine, lo, (ratio - 1) / 2, 8);
    u.setWeights(own);
    const tooLittle = choosePooledBn(u, mine, lo, ratio - 1 - 1e-3, 8);
    // Assert: the same statistics (no gain) are refused under a required gain; a gain beyond the requirement is kept.
    expect(same.keep).toBe(false);
    expect(enough.keep).toBe(true);
    expect(tooLittle.keep).toBe(false);
    const now = new Map(u.getWeights().map((t) => [t.name, t.data]));
    for (const t of own) expect(Array.from(now.get(t.name)!)).toEqual(Array.from(t.data));
    expect(() => choosePooledBn(u, mine, lo, -1, 8)).toThrow();
    u.dispose();
  });
});

describe('pooled BN moments with the sites\' own statistics as the start', () => {
  it('federated.augment reaches the source training (another source model than without it)', async () => {
    // Arrange
    const phases = { source: 0, adapter: 0, alone: 0, federated: 0 };
    // Act
    const plain = await prepareSeed(bnSmoke(false), 1, {}, phases);
    const augmented = await prepareSeed(bnSmoke(true), 1, {}, phases);
    // Assert
    const differs = plain.sourceWeights.some((t, i) => t.data.some((v, j) => v !== augmented.sourceWeights[i].data[j]));
    expect(differs).toBe(true);
  }, 120_000);

  it('every secure sum (weights, BN moments) equals the plain sum, the coordinator sees masked vectors only, refusing sites keep their alone result', async () => {
    // Arrange
    const seen: SecAggReply[] = [];
    const sums: { purpose: string; inputs: Float32Array[]; sum: Float32Array }[] = [];
    const lines: string[] = [];
    // Act
    const r = await runMultiTarget(bnSmoke(true), { onProgress: (m) => lines.push(m), onCoordinatorReceive: (m) => seen.push(m), onSiteInputs: (purpose, _r, inputs, sum) => sums.push({ purpose, inputs, sum }) });
    // Assert: 1 weights round + 1 BN moments sum; no statistics round (ratio-entropy with the source prior).
    expect(r.secureRounds).toBe(2);
    expect(sums.map((s) => s.purpose)).toEqual(['fit', 'statistics']);
    expectSecureSumsArePlainSums(sums, true);
    expect(seen.filter((m) => m.type === 'secagg/masked-vector')).toHaveLength(3 * r.secureRounds);
    expectMaskedWordsUniform(maskedWords(seen));
    expectNoPlainVectorSeen(seen, sums.filter((x) => x.purpose === 'statistics').flatMap((x) => x.inputs), 3);
    const bn = lines.find((m) => m.includes('pooled BN statistics kept by')) ?? '';
    expect(bn).not.toBe('');
    for (const s of r.sites) if (bn.includes(`${s.id} no`)) expect(s.federated[0]).toBe(s.alone[0]);
  }, 300_000);

  it('with the adabn method and a mixed pooled candidate the only secure sum is the BN moments, equal to the plain sum, seen masked', async () => {
    // Arrange: the mricron scenario's sharing (own AdaBN, pooled moments mixed with the own, the entropy check).
    const seen: SecAggReply[] = [];
    const sums: { purpose: string; inputs: Float32Array[]; sum: Float32Array }[] = [];
    const cfg = bnSmoke(false, 0, { rounds: 1, batchSize: 4, options: { method: 'adabn' }, share: { weights: false, bnMoments: true, keepAlone: true, entropyTolerance: 0, bnOwnWeight: 0.25 } });
    // Act
    const r = await runMultiTarget(cfg, { onCoordinatorReceive: (m) => seen.push(m), onSiteInputs: (purpose, _r, inputs, sum) => sums.push({ purpose, inputs, sum }) });
    // Assert
    expect(r.secureRounds).toBe(1);
    expect(sums.map((s) => s.purpose)).toEqual(['statistics']);
    expectSecureSumsArePlainSums(sums, true);
    expect(seen.filter((m) => m.type === 'secagg/masked-vector')).toHaveLength(3);
    expectMaskedWordsUniform(maskedWords(seen));
    expectNoPlainVectorSeen(seen, sums.flatMap((x) => x.inputs), 3);
    for (const s of r.sites) expect(s.federated[0]).toBeGreaterThan(0);
  }, 300_000);
});
