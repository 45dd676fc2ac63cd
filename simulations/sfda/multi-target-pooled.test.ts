import { readFile } from 'node:fs/promises';
import nacl from 'tweetnacl';
import { beforeAll, describe, expect, it } from 'vitest';
import type { SecAggReply } from '../../protocol/secagg/index.ts';
import {
  adamState,
  adamStep,
  adaptAdaBN,
  addBnMomentSums,
  choosePooledBn,
  fitInputAdapter,
  JointCurveSite,
  jointCurveOptions,
  preferPooled,
  setBnFromMomentSums,
  targetBnMomentSums,
  toUnlabeled,
  type UnlabeledSlices,
} from '../../site-agent/adapt/index.ts';
import { makeNestedBoxes, TOY_CONFIG, TOY_SIZE } from '../../site-agent/adapt/toy-shift-fixture.ts';
import { initEngine } from '../../site-agent/engine/index.ts';
import { createUNet } from '../../site-agent/model/index.ts';
import { parseMultiTargetConfig, runMultiTarget } from './multi-target.ts';
import { expectMaskedWordsUniform, expectNoPlainVectorSeen, expectSecureSumsArePlainSums, maskedWords, pooledSmokeScenario, SMOKE_CLIP } from './multi-target-fixture.ts';
import type { SecureRoundConfig } from './multi-target-round.ts';
import { securePooledCurve } from './multi-target-pooled.ts';

beforeAll(async () => {
  await initEngine();
});

const site = (seed: number, gain: number, offset: number, n = 8): UnlabeledSlices => toUnlabeled(makeNestedBoxes(n, TOY_SIZE, seed, gain, offset));

const secureConfig = (k: number): SecureRoundConfig => ({
  ids: Array.from({ length: k }, (_, i) => `site-${i}`),
  numClasses: 3,
  dim: 8,
  maxExamples: 64,
  maxPixels: 65536,
  clip: SMOKE_CLIP,
  identities: Array.from({ length: k }, () => nacl.sign.keyPair()),
});

describe('the pooled scenarios', () => {
  it.each(['sfda-multi-target-same-scanner.json', 'sfda-multi-target-low-field.json', 'sfda-multi-target-pooled.json'])('%s validates and pools curve and BN moments', async (file) => {
    const cfg = parseMultiTargetConfig(JSON.parse(await readFile(new URL(`../scenarios/${file}`, import.meta.url), 'utf8')), file);
    expect(cfg.adapt.share).toMatchObject({ inputCurve: true, bnMoments: true });
    expect(cfg.seeds).toEqual([1, 2, 3]);
  });
});

describe('the per-site rule', () => {
  it('takes the pooled result within the tolerance and its own beyond it, or when the pooled one is not finite', () => {
    expect(preferPooled(1, 1.05, 0.1)).toBe(true);
    expect(preferPooled(1, 1.2, 0.1)).toBe(false);
    expect(preferPooled(1, 0.9, 0)).toBe(true);
    expect(preferPooled(1, 1.0001, 0)).toBe(false);
    expect(preferPooled(1, Number.NaN, 0.1)).toBe(false);
    expect(() => preferPooled(1, 1, -0.1)).toThrow();
  });
});

describe('pooled target BN moments', () => {
  it('one site with one batch: the moment sums give exactly its AdaBN statistics; two sites: the statistics of their slices together', () => {
    const u = createUNet(TOY_CONFIG, 5);
    const a = site(11, 1, 0);
    const b = site(12, 1.3, 0.2);
    const initial = u.getWeights();
    adaptAdaBN(u, a, { batchSize: 8 });
    const adabn = new Map(u.getWeights().map((t) => [t.name, t.data]));
    u.setWeights(initial);
    setBnFromMomentSums(u, targetBnMomentSums(u, a, 8));
    for (const t of u.getWeights()) {
      const want = adabn.get(t.name)!;
      t.data.forEach((v, i) => expect(v).toBeCloseTo(want[i], 4));
    }
    // Two sites, one batch each, pooled = AdaBN on the 16 slices as two batches of 8 (adabn.ts's cumulative average
    // of the batch moments is the pooled mean; its variance is the mean of the batch variances, ours also carries the
    // spread between the batch means, so only the means are compared).
    u.setWeights(initial);
    const pooled = addBnMomentSums([targetBnMomentSums(u, a, 8), targetBnMomentSums(u, b, 8)]);
    expect(pooled.n).toBe(16);
    setBnFromMomentSums(u, pooled);
    const both = new Map(u.getWeights().map((t) => [t.name, t.data]));
    u.setWeights(initial);
    adaptAdaBN(u, { ...a, n: 16, images: Float32Array.from([...a.images, ...b.images]), caseIds: [...a.caseIds, ...b.caseIds] }, { batchSize: 8 });
    for (const t of u.getWeights().filter((x) => x.name.endsWith('.mean'))) t.data.forEach((v, i) => expect(both.get(t.name)![i]).toBeCloseTo(v, 4));
    u.dispose();
  });
});

describe('the pooled BN check', () => {
  it('keeps the pooled statistics within the entropy tolerance, and restores its own when the entropy rose beyond it', () => {
    const u = createUNet(TOY_CONFIG, 5);
    const mine = site(41, 1, 0);
    adaptAdaBN(u, mine, { batchSize: 8 });
    const own = u.getWeights();
    // "Pooled" statistics dominated by a scanner with a very different gain and offset.
    const pooled = addBnMomentSums([targetBnMomentSums(u, mine, 8), targetBnMomentSums(u, site(42, 4, 2, 24), 8)]);
    const taken = choosePooledBn(u, mine, pooled, Number.POSITIVE_INFINITY, 8);
    expect(taken.keep).toBe(true);
    expect(taken.pooled).toBeGreaterThan(taken.own);
    u.setWeights(own);
    const refused = choosePooledBn(u, mine, pooled, (taken.pooled / taken.own - 1) / 2, 8);
    expect(refused.keep).toBe(false);
    const now = new Map(u.getWeights().map((t) => [t.name, t.data]));
    for (const t of own) expect(Array.from(now.get(t.name)!)).toEqual(Array.from(t.data));
    u.dispose();
  });
});

describe('pooled input curve', () => {
  it('Adam on the summed gradient is tfjs Adam', () => {
    // f(v) = Σ (v - 3)², gradient 2(v - 3): a few steps from 0 agree with our float64 Adam.
    const s = adamState(2);
    let v = [0, 1];
    for (let i = 0; i < 5; i++) v = adamStep(v, v.map((x) => 2 * (x - 3)), s, 0.1);
    expect(v[0]).toBeCloseTo(0.5, 2);
    expect(v[1]).toBeCloseTo(1.5, 2);
  });

  it('sites of the same scanner (own gain and offset): every secure sum equals the plain sum, the coordinator sees masked vectors only, each site chooses by its own objective', async () => {
    const u = createUNet(TOY_CONFIG, 5);
    const targets = [site(21, 1, 0), site(22, 1.2, 0.1), site(23, 0.9, -0.1)];
    const adapter = { knots: 4, steps: 3, starts: ['identity', 'negation'] as const, randomStarts: 1 };
    const own = targets.map((t, i) => fitInputAdapter(u, t, null, { ...adapter, batchSize: 8, seed: 7 * 31 + i }).curve);
    const seen: SecAggReply[] = [];
    const sums: { inputs: Float32Array[]; sum: Float32Array }[] = [];
    const c = secureConfig(3);
    const r = await securePooledCurve(c, u, targets, null, adapter, own, { batchSize: 8, seed: 7, tolerance: 0 }, {
      onCoordinatorReceive: (m) => seen.push(m),
      onSiteInputs: (_p, _r, inputs, sum) => sums.push({ inputs, sum }),
    });
    // 1 restart sum + 3 restarts x (3 gradient steps + 1 scoring) secure sums.
    expect(r.secureRounds).toBe(1 + 3 * 4);
    expect(sums).toHaveLength(r.secureRounds);
    expectSecureSumsArePlainSums(sums, false);
    // The coordinator's messages: no site's plain vector among them, masked words spread over the ring.
    expect(seen.filter((m) => m.type === 'secagg/masked-vector')).toHaveLength(3 * r.secureRounds);
    expectMaskedWordsUniform(maskedWords(seen));
    expectNoPlainVectorSeen(seen, sums.flatMap((x) => x.inputs), 3);
    // The rule at tolerance 0: a site takes the pooled curve exactly when its own objective is not higher under it.
    r.joined.forEach((j, i) => expect(j).toBe(r.pooled[i] <= r.own[i]));
    r.curves.forEach((curve, i) => {
      if (!r.joined[i]) expect(curve).toBe(own[i]);
      else curve.values.forEach((v, k) => expect(v).toBeCloseTo(r.values[k], 5));
    });
    u.dispose();
  }, 120_000);

  it('a site whose own objective is worse under the pooled curve keeps its own curve (the heterogeneous case)', async () => {
    const u = createUNet(TOY_CONFIG, 5);
    // Two sites alike and one with inverted contrast: the pooled curve is fitted mostly to the first two.
    const targets = [site(31, 1, 0), site(32, 1.1, 0), site(33, -1, 1)];
    const adapter = { knots: 4, steps: 3, starts: ['identity', 'negation'] as const, randomStarts: 0 };
    const own = targets.map((t, i) => fitInputAdapter(u, t, null, { ...adapter, batchSize: 8, seed: 9 * 31 + i }).curve);
    const r = await securePooledCurve(secureConfig(3), u, targets, null, adapter, own, { batchSize: 8, seed: 9, tolerance: 0 }, {});
    // At tolerance 0 the own curve minimised the site's objective over its restarts: some site finds the pooled one worse.
    expect(r.joined.filter((j) => !j).length).toBeGreaterThan(0);
    for (let i = 0; i < 3; i++) {
      expect(r.joined[i]).toBe(r.pooled[i] <= r.own[i]);
      if (!r.joined[i]) expect(r.curves[i]).toBe(own[i]);
    }
    // The options a pooled fit cannot honour are refused.
    expect(() => jointCurveOptions({ selection: 'entropy-adabn' })).toThrow();
    const s = new JointCurveSite(u, targets[0], null, adapter, jointCurveOptions({ ...adapter, batchSize: 8, seed: 1 }));
    expect(s.starts(9)).toHaveLength(2);
    expect(() => s.curve([1, 2])).toThrow();
    s.dispose();
    u.dispose();
  }, 120_000);
});

describe('the pooled mode end to end', () => {
  it('curve, BN moments and weights: every secure sum equals the plain sum, the coordinator sees masked vectors only', async () => {
    const cfg = pooledSmokeScenario('pooled smoke', { inputCurve: true, bnMoments: true });
    const seen: SecAggReply[] = [];
    const sums: { purpose: string; inputs: Float32Array[]; sum: Float32Array }[] = [];
    const r = await runMultiTarget(cfg, { onCoordinatorReceive: (m) => seen.push(m), onSiteInputs: (purpose, _r, inputs, sum) => sums.push({ purpose, inputs, sum }) });
    // Curve: 1 restart sum + 2 restarts x (2 steps + 1 score); weights: 1 round; BN moments: 1.
    expect(r.secureRounds).toBe(1 + 2 * 3 + 1 + 1);
    expect(sums).toHaveLength(r.secureRounds);
    expectSecureSumsArePlainSums(sums, true);
    expect(seen.filter((m) => m.type === 'secagg/masked-vector')).toHaveLength(3 * r.secureRounds);
    const statistics = sums.filter((x) => x.purpose === 'statistics').flatMap((x) => x.inputs);
    expectNoPlainVectorSeen(seen, statistics.filter((v) => v.some((x) => x !== 0)), 3);
    for (const s of r.sites) for (const v of [...s.alone, ...s.federated]) expect(Number.isFinite(v)).toBe(true);
  }, 300_000);
});
