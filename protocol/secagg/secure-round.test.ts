import nacl from 'tweetnacl';
import { combine } from 'shamir-secret-sharing';
import { describe, expect, it } from 'vitest';
import type { SecAggError } from './errors.ts';
import type { SecAggInstruction, SecAggReply, ShareKeysIns } from './messages.ts';
import { packVectors, unpackVectors } from './pack.ts';
import { dequantizeSum, quantizationErrorBound } from './quantize.ts';
import { makeSimulatedSites, runSecAggRound, type SimulatedSite } from './run-round.ts';
import { SecAggServerWorkflow } from './server-workflow.ts';
import { SecAggSiteSession } from './site-session.ts';
import { makeSecAggConfig } from './config.ts';

function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

function randomVectors(n: number, len: number, seed: number, scale = 1): Float32Array[] {
  const r = lcg(seed);
  return Array.from({ length: n }, () => Float32Array.from({ length: len }, () => (r() * 2 - 1) * scale));
}

function plainSum(vecs: readonly Float32Array[], ids: readonly number[]): Float64Array {
  const out = new Float64Array(vecs[0].length);
  for (const i of ids) for (let j = 0; j < out.length; j++) out[j] += vecs[i][j];
  return out;
}

function expectWithinBound(got: Float32Array, want: Float64Array, bound: number): void {
  let worst = 0;
  for (let j = 0; j < want.length; j++) {
    worst = Math.max(worst, Math.abs(got[j] - want[j]) - Math.abs(want[j]) * 2 ** -24);
  }
  expect(worst).toBeLessThanOrEqual(bound);
}

const QUANT = { clip: 1, scaleBits: 24 };
const ids = (sites: SimulatedSite[], idx: number[]) => idx.map((i) => sites[i].siteId);

async function codeOf(p: Promise<unknown>): Promise<string | undefined> {
  try {
    await p;
  } catch (e) {
    return (e as SecAggError).code;
  }
  return undefined;
}

describe('secure aggregation round (in-memory driver)', () => {
  it.each([3, 4, 5, 8, 13, 17, 20])('n = %i: the aggregate equals the plain sum within the stated bound', async (n) => {
    const len = 48;
    const vecs = randomVectors(n, len, n);
    const sites = makeSimulatedSites(n, (i) => vecs[i]);
    const r = await runSecAggRound(sites, { vectorLength: len, quant: QUANT });
    expect(r.included.length).toBe(n);
    expectWithinBound(r.sum, plainSum(vecs, [...Array(n).keys()]), quantizationErrorBound(QUANT, n));
  });

  it('the coordinator sees no individual vector: masked vectors look uniform, shares only as ciphertexts or one kind', async () => {
    const n = 6;
    const len = 512;
    const vecs = randomVectors(n, len, 99);
    const sites = makeSimulatedSites(n, (i) => vecs[i]);
    const seen: SecAggReply[] = [];
    const r = await runSecAggRound(sites, {
      vectorLength: len,
      quant: QUANT,
      dropouts: { 'collect-masked-vectors': [sites[5].siteId] },
      onCoordinatorReceive: (m) => seen.push(m),
    });
    expect(r.included.length).toBe(5);
    const masked = seen.filter((m) => m.type === 'secagg/masked-vector');
    expect(masked.length).toBe(5);
    for (const m of masked) {
      const i = sites.findIndex((s) => s.siteId === m.siteId);
      const decoded = dequantizeSum(m.masked, QUANT); // what the coordinator would read as "the vector"
      let meanAbsDiff = 0;
      let corr = 0;
      for (let j = 0; j < len; j++) {
        meanAbsDiff += Math.abs(decoded[j] - vecs[i][j]) / len;
        corr += (decoded[j] * vecs[i][j]) / len;
      }
      // Plaintext is within [-1, 1]; a masked word decodes to about uniform on [-128, 128).
      expect(meanAbsDiff).toBeGreaterThan(20);
      expect(Math.abs(corr)).toBeLessThan(10);
      // And the raw words cover the whole ring, not a small window around the plaintext's encoding.
      const high = Array.from(m.masked).filter((w) => w > 2 ** 31).length / len;
      expect(high).toBeGreaterThan(0.4);
      expect(high).toBeLessThan(0.6);
    }
    // Per site, the coordinator receives only one kind of share: b-shares for survivors, key shares for the dropout.
    const kinds = new Map<string, Set<string>>();
    for (const m of seen) {
      if (m.type !== 'secagg/unmask-shares') continue;
      for (const s of m.selfMaskShares) kinds.set(s.of, (kinds.get(s.of) ?? new Set()).add('b'));
      for (const s of m.maskKeyShares) kinds.set(s.of, (kinds.get(s.of) ?? new Set()).add('sk'));
    }
    for (const [of, k] of kinds) {
      expect(k.size).toBe(1);
      expect([...k][0]).toBe(of === sites[5].siteId ? 'sk' : 'b');
    }
    // Fewer than t of the revealed shares of a site reconstruct nothing: t give one seed, t-1 give another value.
    const t = r.config.threshold;
    const bShares = seen.flatMap((m) => (m.type === 'secagg/unmask-shares' ? m.selfMaskShares : [])).filter((s) => s.of === sites[0].siteId);
    expect(bShares.length).toBeGreaterThanOrEqual(t);
    const full = await combine(bShares.slice(0, t).map((s) => s.share));
    if (bShares.length > t) expect(await combine(bShares.slice(1, t + 1).map((s) => s.share))).toEqual(full);
    expect(await combine(bShares.slice(0, t - 1).map((s) => s.share))).not.toEqual(full);
    // Share boxes are opaque: no plaintext share bytes appear inside any ciphertext the coordinator relayed.
    const revealed = seen.flatMap((m) => (m.type === 'secagg/unmask-shares' ? [...m.selfMaskShares, ...m.maskKeyShares] : []));
    const boxes = seen.flatMap((m) => (m.type === 'secagg/encrypted-shares' ? m.shares.map((s) => Buffer.from(s.ciphertext)) : []));
    for (const s of revealed) for (const box of boxes) expect(box.includes(Buffer.from(s.share))).toBe(false);
  });

  it('a coordinator that swaps a public key is detected and the site refuses to continue', async () => {
    const n = 5;
    const vecs = randomVectors(n, 8, 5);
    const sites = makeSimulatedSites(n, (i) => vecs[i]);
    const attacker = nacl.box.keyPair();
    const swap = (to: string, ins: SecAggInstruction): SecAggInstruction => {
      if (ins.type !== 'secagg/share-keys' || to !== sites[0].siteId) return ins;
      const keys = ins.keys.map((k) => (k.siteId === sites[1].siteId ? { ...k, maskPublicKey: attacker.publicKey } : k));
      return { ...ins, keys } satisfies ShareKeysIns;
    };
    expect(await codeOf(runSecAggRound(sites, { vectorLength: 8, quant: QUANT, tamper: swap }))).toBe('bad-signature');

    // With refusals treated as dropouts the round goes on without the victim, and the victim stays aborted.
    const r = await runSecAggRound(sites, { vectorLength: 8, quant: QUANT, tamper: swap, onSiteError: 'drop' });
    expect(r.siteErrors.get(sites[0].siteId)?.code).toBe('bad-signature');
    expect(r.excluded).toEqual([sites[0].siteId]);
    expectWithinBound(r.sum, plainSum(vecs, [1, 2, 3, 4]), quantizationErrorBound(QUANT, n));
  });

  it('keys relayed for a site that is not enrolled are refused (unknown-site)', async () => {
    const sites = makeSimulatedSites(4, () => new Float32Array(4));
    const enrolled = new Map(sites.slice(0, 3).map((s) => [s.siteId, s.identity.publicKey] as const));
    expect(await codeOf(runSecAggRound(sites, { vectorLength: 4, quant: QUANT, enrolled }))).toBe('unknown-site');
  });

  it.each(['setup', 'share-keys', 'collect-masked-vectors', 'consistency-check', 'unmask'] as const)(
    'a site dropping at %s: the round completes with the right sum',
    async (stage) => {
      const n = 7;
      const vecs = randomVectors(n, 32, 7);
      const sites = makeSimulatedSites(n, (i) => vecs[i]);
      const r = await runSecAggRound(sites, { vectorLength: 32, quant: QUANT, dropouts: { [stage]: ids(sites, [3]) } });
      // A site that sent its masked vector before dropping (consistency-check or unmask stage) is in the sum.
      const late = stage === 'unmask' || stage === 'consistency-check';
      const expected = late ? [0, 1, 2, 3, 4, 5, 6] : [0, 1, 2, 4, 5, 6];
      expect(r.included).toEqual(ids(sites, expected));
      expectWithinBound(r.sum, plainSum(vecs, expected), quantizationErrorBound(QUANT, n));
    },
  );

  it('dropouts at every stage at once, on a k-regular (SecAgg+) graph', async () => {
    const n = 24;
    const vecs = randomVectors(n, 16, 24);
    const sites = makeSimulatedSites(n, (i) => vecs[i]);
    const r = await runSecAggRound(sites, {
      vectorLength: 16,
      quant: QUANT,
      // 6 dropouts in all; with k = 14 and t = 8 every site keeps >= 8 answering neighbours whatever the graph.
      degree: 14,
      threshold: 8,
      dropouts: {
        setup: ids(sites, [1]),
        'share-keys': ids(sites, [5]),
        'collect-masked-vectors': ids(sites, [9, 10]),
        'consistency-check': ids(sites, [12]),
        unmask: ids(sites, [14]),
      },
    });
    const expected = [...Array(n).keys()].filter((i) => ![1, 5, 9, 10].includes(i));
    expect(r.config.degree).toBe(14);
    expect(r.included).toEqual(ids(sites, expected));
    expectWithinBound(r.sum, plainSum(vecs, expected), quantizationErrorBound(QUANT, n));
  });

  it('fewer than t survivors aborts with below-threshold and returns nothing', async () => {
    const n = 5; // complete graph, k = 4, t = 3
    const sites = makeSimulatedSites(n, () => new Float32Array(4).fill(0.5));
    const tooMany = { 'collect-masked-vectors': ids(sites, [0, 1, 2]) };
    expect(await codeOf(runSecAggRound(sites, { vectorLength: 4, quant: QUANT, dropouts: tooMany }))).toBe('below-threshold');
    expect(await codeOf(runSecAggRound(sites, { vectorLength: 4, quant: QUANT, dropouts: { setup: ids(sites, [0, 1, 2]) } }))).toBe(
      'below-threshold',
    );
    // Enough masked vectors, but too few sites answer the unmask stage to rebuild every self mask.
    const lateDrop = { unmask: ids(sites, [0, 1, 2]) };
    expect(await codeOf(runSecAggRound(sites, { vectorLength: 4, quant: QUANT, dropouts: lateDrop }))).toBe('below-threshold');
  });

  it('the server refuses out-of-order messages and a finished/aborted round reveals nothing more', async () => {
    const sites = makeSimulatedSites(3, () => new Float32Array(2));
    const enrolled = new Map(sites.map((s) => [s.siteId, s.identity.publicKey] as const));
    const cfg = makeSecAggConfig({ roundId: 'r', siteIds: sites.map((s) => s.siteId), vectorLength: 2, quant: QUANT });
    const server = new SecAggServerWorkflow(cfg, enrolled);
    const s0 = new SecAggSiteSession({ siteId: sites[0].siteId, identity: sites[0].identity, enrolled, input: new Float32Array(2) });
    const keys = await s0.handle(server.setupInstruction());
    server.receive(keys);
    expect(() => server.receive(keys)).toThrow(/second setup reply/);
    expect(() => server.receive({ type: 'secagg/masked-vector', version: 1, roundId: 'r', siteId: sites[0].siteId, masked: new Uint32Array(2) })).toThrow(
      /coordinator is in setup/,
    );
    // Only 1 of 3 advertised: closing the stage aborts, and the server stays aborted.
    expect(() => server.closeStage()).toThrow(/below-threshold/);
    expect(server.currentState).toBe('aborted');
    await expect(server.finish()).rejects.toMatchObject({ code: 'aborted' });
    // The site refuses an instruction for a later stage than it is in, then stays aborted.
    await expect(s0.handle({ type: 'secagg/unmask', version: 1, roundId: 'r', survivors: [], dropped: [], signatures: [] })).rejects.toMatchObject({
      code: 'wrong-stage',
    });
    await expect(s0.handle(server.config as never)).rejects.toMatchObject({ code: 'aborted' });
  });

  it('an unmask request that differs from the survivor set the site signed is refused, nothing revealed', async () => {
    const n = 5;
    const sites = makeSimulatedSites(n, () => new Float32Array(2));
    const lie = (to: string, ins: SecAggInstruction): SecAggInstruction => {
      if (ins.type === 'secagg/unmask' && to === sites[0].siteId) {
        return { ...ins, dropped: [...ins.dropped, sites[1].siteId] }; // sites[1] is also in survivors
      }
      return ins;
    };
    const r = await runSecAggRound(sites, { vectorLength: 2, quant: QUANT, tamper: lie, onSiteError: 'drop' });
    // sites[0] refuses and reveals nothing; every other site still has 3 = t answering neighbours (k = 4).
    expect(r.siteErrors.get(sites[0].siteId)?.code).toBe('inconsistent-request');
    expect(r.included).toEqual(sites.map((s) => s.siteId));
  });

  it('consistency check: a survivor set listing a site as both survivor and dropped is refused before any reveal', async () => {
    const sites = makeSimulatedSites(5, () => new Float32Array(2));
    // The lie is told consistently in both stages, so only the overlap check can catch it.
    const lie = (to: string, ins: SecAggInstruction): SecAggInstruction =>
      (ins.type === 'secagg/consistency-check' || ins.type === 'secagg/unmask') && to === sites[2].siteId
        ? { ...ins, dropped: [...ins.dropped, sites[3].siteId] }
        : ins;
    await expect(runSecAggRound(sites, { vectorLength: 2, quant: QUANT, tamper: lie })).rejects.toThrow(
      /inconsistent-request.*both survivor and dropped/,
    );
  });

  it('a coordinator showing each site a different survivor set (isolation attack) gets no share at all', async () => {
    const n = 6;
    const sites = makeSimulatedSites(n, (i) => Float32Array.of(i, -i).map((x) => x / 10));
    const told = new Map<string, { survivors: readonly string[]; dropped: readonly string[] }>();
    const attack = (to: string, ins: SecAggInstruction): SecAggInstruction => {
      if (ins.type === 'secagg/consistency-check') {
        // Each site is told that a different other site dropped, so the coordinator could ask for the "dropped"
        // kind of share of every site from someone.
        const me = sites.findIndex((s) => s.siteId === to);
        const gone = sites[(me + 1) % n].siteId;
        const view = { survivors: ins.survivors.filter((s) => s !== gone), dropped: [...ins.dropped, gone] };
        told.set(to, view);
        return { ...ins, ...view };
      }
      if (ins.type === 'secagg/unmask') return { ...ins, ...told.get(to)! };
      return ins;
    };
    const seen: SecAggReply[] = [];
    const run = runSecAggRound(sites, {
      vectorLength: 2,
      quant: QUANT,
      tamper: attack,
      coordinatorVerifies: false,
      onSiteError: 'drop',
      onCoordinatorReceive: (m) => seen.push(m),
    });
    expect(await codeOf(run)).toBe('below-threshold');
    expect(seen.filter((m) => m.type === 'secagg/survivors-signature').length).toBe(n);
    expect(seen.filter((m) => m.type === 'secagg/unmask-shares')).toEqual([]);
  });

  it('refuses before the round a configuration where n * range could wrap', async () => {
    const sites = makeSimulatedSites(10, () => new Float32Array(2));
    expect(await codeOf(runSecAggRound(sites, { vectorLength: 2, quant: { clip: 8, scaleBits: 28 } }))).toBe('bad-config');
  });

  it('aggregates packed statistics: weights x count, counts, BN stats, latent sufficient statistics', async () => {
    const n = 4;
    const r = lcg(3);
    const d = 3; // latent dimension
    const counts = [12, 30, 7, 21];
    const stats = counts.map((c) => {
      const z = Array.from({ length: c }, () => Float32Array.from({ length: d }, () => r() - 0.5));
      const sum = new Float32Array(d);
      const outer = new Float32Array(d * d);
      for (const v of z) for (let a = 0; a < d; a++) {
        sum[a] += v[a];
        for (let b = 0; b < d; b++) outer[a * d + b] += v[a] * v[b];
      }
      const scale = 1 / 64; // public bound on per-site counts keeps every packed value inside the clip range
      const w = Float32Array.from({ length: 5 }, () => r() - 0.5).map((x) => x * c * scale);
      return packVectors({
        'fedavg.weighted': w,
        'fedavg.count': Float32Array.of(c * scale),
        'bn1.mean': Float32Array.from({ length: 2 }, () => r() * 0.1),
        'latent.c1.count': Float32Array.of(c * scale),
        'latent.c1.sum': sum.map((x) => x * scale),
        'latent.c1.outer': outer.map((x) => x * scale),
      });
    });
    const q = { clip: 1, scaleBits: 26 };
    const sites = makeSimulatedSites(n, (i) => stats[i].vector);
    const res = await runSecAggRound(sites, { vectorLength: stats[0].layout.totalLength, quant: q });
    const agg = unpackVectors(res.sum, stats[0].layout);
    const want = unpackVectors(Float32Array.from(plainSum(stats.map((s) => s.vector), [0, 1, 2, 3])), stats[0].layout);
    for (const name of Object.keys(want)) {
      for (let j = 0; j < want[name].length; j++) {
        expect(Math.abs(agg[name][j] - want[name][j])).toBeLessThan(quantizationErrorBound(q, n) + 1e-6);
      }
    }
    expect(agg['fedavg.count'][0] * 64).toBeCloseTo(70, 4);
  });
});
