/**
 * Secure aggregation wired into real rounds: a socket.io coordinator on 127.0.0.1:0 with 3-4 in-process sites and
 * the least-squares toy trainer. Checked: secure FedAvg equals plain FedAvg within the quantization bound; what the
 * coordinator receives holds no site's plaintext update; a site dropping after its masked vector is recovered;
 * fewer than t survivors aborts the round cleanly and the next round works; a coordinator swapping a site's key is
 * refused; a statistics round returns only the sum. Barriers are events and promises; no sleeps.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { startCoordinator, type CoordinatorHandle } from '../coordinator/start-coordinator.ts';
import { FedAvg } from '../coordinator/strategies/fedavg.ts';
import { StatisticsRoundError } from '../coordinator/index.ts';
import type { SecAggTestHooks } from '../coordinator/index.ts';
import { Enrollment } from '../protocol/enrollment.ts';
import { generateIdentity, type Identity } from '../protocol/identity.ts';
import type { WeightSet } from '../protocol/named-tensor.ts';
import { fitContribution } from '../protocol/secagg/fit-contribution.ts';
import type { SecAggReply } from '../protocol/secagg/messages.ts';
import { quantize, quantizationErrorBound, maxSafeScaleBits } from '../protocol/secagg/quantize.ts';
import { replyToWire } from '../protocol/secagg/wire-json.ts';
import { SOURCE_STATS_FILE, writeRunArtifacts } from '../coordinator/index.ts';
import type { SourceStats } from '../protocol/contracts/index.ts';
import { SOURCE_STATS_REQUEST, sourceStatsToVectors } from '../protocol/index.ts';
import { runSite, type RunSiteOptions } from '../site-agent/client/run-site.ts';
import type { SiteProgress } from '../site-agent/client/site-session.ts';
import type { LocalTrainer } from '../site-agent/client/local-trainer.ts';
import { LeastSquaresTrainer, leastSquaresSteps, linearWeights, makeLinearData, mse, type LinearData } from './support/least-squares-trainer.ts';
import { GENEROUS_TIMEOUTS } from './support/bounds.ts';

const D = 3;
const LR = 0.1;
const EPOCHS = 2;
const STEPS = 5;
const SECURE = { clip: 8, maxExamples: 100 };

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

interface Fixture {
  id: string;
  identity: Identity;
  data: LinearData;
  trainer: LeastSquaresTrainer;
}

function sites(ns: number[]): Fixture[] {
  return ns.map((n, i) => {
    const data = makeLinearData(100 + i * 7, n, D, [1, -2, 0.5], 0.3);
    return { id: `hospital-${String.fromCharCode(97 + i)}`, identity: generateIdentity(), data, trainer: new LeastSquaresTrainer(data, STEPS) };
  });
}

function handFedAvg(global: { w: Float32Array; b: number }, data: LinearData[]): { w: Float32Array; b: number; loss: number } {
  const outs = data.map((d) => leastSquaresSteps(d, global.w, global.b, LR, EPOCHS * STEPS));
  const total = data.reduce((s, d) => s + d.n, 0);
  const w = new Float32Array(D);
  for (let j = 0; j < D; j++) w[j] = outs.reduce((s, o, k) => s + (data[k].n / total) * o.w[j], 0);
  const b = outs.reduce((s, o, k) => s + (data[k].n / total) * o.b, 0);
  const loss = outs.reduce((s, o, k) => s + (data[k].n / total) * mse(data[k], o.w, o.b), 0);
  return { w, b, loss };
}

async function coordinator(fx: Fixture[], initial: WeightSet, extra: Partial<Parameters<typeof startCoordinator>[0]> = {}): Promise<CoordinatorHandle> {
  const enrollment = new Enrollment();
  for (const s of fx) enrollment.allow(s.id, s.identity.publicKey);
  const handle = await startCoordinator({
    identity: generateIdentity(),
    enrollment,
    initialWeights: initial,
    rounds: 2,
    minSites: 3,
    strategy: new FedAvg({ localEpochs: EPOCHS, lr: LR }),
    port: 0,
    autoStart: false,
    timeouts: GENEROUS_TIMEOUTS,
    secureAggregation: SECURE,
    ...extra,
  });
  cleanups.push(() => handle.close());
  return handle;
}

function startSites(coord: CoordinatorHandle, fx: Fixture[], extra: (s: Fixture) => Partial<RunSiteOptions> = () => ({})) {
  return fx.map((s) => {
    const abort = new AbortController();
    cleanups.push(() => abort.abort());
    const progress: SiteProgress[] = [];
    const done = runSite({
      url: coord.url,
      identity: s.identity,
      coordinatorPublicKey: coord.publicKey,
      siteId: s.id,
      trainer: s.trainer,
      reconnect: { maxAttempts: 1 },
      signal: abort.signal,
      onProgress: (p) => progress.push(p),
      ...extra(s),
    });
    done.catch(() => {});
    return { done, abort, progress };
  });
}

function waitForSites(handle: CoordinatorHandle, n: number): Promise<void> {
  return new Promise((resolve) => {
    const check = (): void => {
      if (handle.connectedSites().length >= n) {
        handle.events.off('siteConnected', check);
        resolve();
      }
    };
    handle.events.on('siteConnected', check);
    check();
  });
}

function weightsOf(coord: CoordinatorHandle): { w: Float32Array; b: number } {
  const ws = coord.weights();
  return { w: ws.find((t) => t.name === 'linear.w')!.data, b: ws.find((t) => t.name === 'linear.b')!.data[0] };
}

/** |got - want| <= the stated bound: sum error n*2^-(s+1) divided by the total weight sum(n_k)/M, plus float32 rounding. */
function expectWithinQuantBound(got: { w: Float32Array; b: number }, want: { w: Float32Array; b: number }, nSites: number, totalExamples: number): void {
  const q = { clip: SECURE.clip, scaleBits: maxSafeScaleBits(SECURE.clip, nSites) };
  const weight = totalExamples / SECURE.maxExamples;
  const bound = (quantizationErrorBound(q, nSites) * 4) / weight + 1e-6; // x4: numerator and denominator both carry error; 1e-6: float32
  for (let j = 0; j < D; j++) expect(Math.abs(got.w[j] - want.w[j])).toBeLessThanOrEqual(bound);
  expect(Math.abs(got.b - want.b)).toBeLessThanOrEqual(bound);
}

describe('secure aggregation in federated rounds (socket.io)', () => {
  it('gives the plain FedAvg model within the quantization bound, and the coordinator receives no plaintext update', async () => {
    const fx = sites([30, 20, 10]);
    const w0 = new Float32Array([0.1, 0.2, -0.1]);
    const received: { from: string; reply: SecAggReply }[] = [];
    const hooks: SecAggTestHooks = { onReply: (from, reply) => received.push({ from, reply }) };
    const coord = await coordinator(fx, linearWeights(w0, 0), { secAggTestHooks: hooks });
    const running = startSites(coord, fx);
    await waitForSites(coord, 3);
    const history = await coord.start();
    await Promise.all(running.map((r) => r.done));

    const r1 = handFedAvg({ w: w0, b: 0 }, fx.map((s) => s.data));
    const r2 = handFedAvg(r1, fx.map((s) => s.data));
    expectWithinQuantBound(weightsOf(coord), r2, 3, 60);
    expect(history).toHaveLength(2);
    for (const [i, rec] of history.entries()) {
      expect(rec.aggregated).toBe(true);
      expect(rec.failures).toEqual([]);
      expect(rec.secureAggregation).toMatchObject({ included: fx.map((s) => s.id), excluded: [], totalExamples: 60, error: null });
      // Per-site numbers are unknown to the coordinator; the aggregate loss is the example-weighted mean.
      for (const s of rec.sites) {
        expect(s.numExamples).toBeNull();
        expect(s.trainLoss).toBeNull();
        expect(s.evalMetrics?.mse).toBeGreaterThan(0); // evaluation stays per site (SECURITY.md)
      }
      expect(rec.meanTrainLoss).toBeCloseTo([r1, r2][i].loss, 5);
      expect(rec.fitMetrics.trainLoss).toBeCloseTo([r1, r2][i].loss, 5);
    }
    for (const r of running) expect(r.progress.filter((p) => p.type === 'fit').every((p) => p.type === 'fit' && p.secure === true)).toBe(true);

    // What the coordinator received: 5 kinds of reply per site per round, masked vectors included.
    expect(received.filter((r) => r.reply.type === 'secagg/masked-vector')).toHaveLength(6);
    const wire = received.map((r) => {
      const { json, masked } = replyToWire(r.reply);
      return Buffer.concat([Buffer.from(JSON.stringify(json)), Buffer.from(masked ?? new Uint8Array(0))]);
    });
    const all = Buffer.concat(wire);
    for (const [round, global] of [[1, { w: w0, b: 0 }], [2, r1]] as const) {
      for (const s of fx) {
        const out = leastSquaresSteps(s.data, global.w, global.b, LR, EPOCHS * STEPS);
        // The site's trained weights never appear, neither raw nor as its quantized weighted contribution.
        expect(all.includes(Buffer.from(out.w.buffer))).toBe(false);
        const spec = { tensors: [{ name: 'linear.b', length: 1 }, { name: 'linear.w', length: D }], metrics: ['trainLoss'], maxExamples: SECURE.maxExamples };
        const plain = fitContribution(spec, new Map([['linear.w', out.w], ['linear.b', Float32Array.of(out.b)]]), s.data.n, { trainLoss: mse(s.data, out.w, out.b) });
        const q = quantize(plain, { clip: SECURE.clip, scaleBits: maxSafeScaleBits(SECURE.clip, 3) });
        const maskedOfSite = received.filter((r) => r.from === s.id && r.reply.type === 'secagg/masked-vector');
        expect(maskedOfSite).toHaveLength(2);
        for (const m of maskedOfSite) {
          const masked = (m.reply as Extract<SecAggReply, { type: 'secagg/masked-vector' }>).masked;
          const equal = masked.filter((x, i) => x === q[i]).length;
          expect(equal, `round ${round}: masked vector of ${s.id} equals its plaintext in ${equal} entries`).toBe(0);
        }
      }
    }
  });

  it('recovers a site that drops after sending its masked vector (its update stays in the sum)', async () => {
    // 4 sites, k = 3 neighbours, t = 2: each site's shares survive one missing holder. (With 3 sites k = 2 forces
    // t = 2 = k, so no holder may be missing: 3-site rounds tolerate no dropout; SECURITY.md.)
    const fx = sites([30, 20, 10, 40]);
    const w0 = new Float32Array([0, 0, 0]);
    let dropper: { abort: AbortController } | undefined;
    const hooks: SecAggTestHooks = {
      onReply: (from, reply) => {
        if (from === 'hospital-c' && reply.type === 'secagg/masked-vector') dropper?.abort.abort();
      },
    };
    const coord = await coordinator(fx, linearWeights(w0, 0), { rounds: 1, secAggTestHooks: hooks, secureAggregation: { ...SECURE, threshold: 2 } });
    const running = startSites(coord, fx);
    dropper = running[2];
    await waitForSites(coord, 4);
    const [rec] = await coord.start();
    await expect(running[2].done).rejects.toMatchObject({ code: 'aborted' });

    expect(rec.aggregated).toBe(true);
    expect(rec.secureAggregation?.included).toEqual(['hospital-a', 'hospital-b', 'hospital-c', 'hospital-d']);
    expect(rec.failures.filter((f) => f.stage === 'fit')).toEqual([expect.objectContaining({ siteId: 'hospital-c', code: 'disconnected' })]);
    expectWithinQuantBound(weightsOf(coord), handFedAvg({ w: w0, b: 0 }, fx.map((s) => s.data)), 4, 100);
  });

  it('aborts a round with fewer than t survivors (model kept, failures reported) and the next round works', async () => {
    const fx = sites([30, 20, 10, 40]); // k = 3 neighbours, default t = 3
    const failing = new Set(['hospital-b', 'hospital-d']);
    const trainerOf = (s: Fixture): LocalTrainer => ({
      fit: async (g, c) => {
        if (c.round === 1 && failing.has(s.id)) throw new Error('scanner offline');
        return s.trainer.fit(g, c);
      },
      evaluate: (g, c) => s.trainer.evaluate(g, c),
    });
    const w0 = new Float32Array([0.3, 0.1, 0]);
    const coord = await coordinator(fx, linearWeights(w0, 0));
    const snapshots: Float32Array[] = [];
    coord.events.on('roundCompleted', () => snapshots.push(new Float32Array(weightsOf(coord).w)));
    const running = startSites(coord, fx, (s) => ({ trainer: trainerOf(s) }));
    await waitForSites(coord, 4);
    const history = await coord.start();
    await Promise.all(running.map((r) => r.done));

    const [first, second] = history;
    expect(first.aggregated).toBe(false);
    expect(first.secureAggregation?.error).toMatch(/below-threshold/);
    expect(first.secureAggregation?.included).toEqual([]);
    expect(first.failures.filter((f) => f.stage === 'fit').map((f) => f.siteId).sort()).toEqual(fx.map((s) => s.id));
    expect(first.failures.find((f) => f.siteId === 'hospital-b')?.reason).toMatch(/scanner offline/);
    expect(Array.from(snapshots[0])).toEqual(Array.from(w0)); // global model kept, nothing partial applied
    expect(second.aggregated).toBe(true);
    expect(second.secureAggregation?.included).toHaveLength(4);
    expectWithinQuantBound(weightsOf(coord), handFedAvg({ w: w0, b: 0 }, fx.map((s) => s.data)), 4, 100);
    // Monitoring sees both outcomes and the sites left out of the aborted sum.
    const metrics = await (await fetch(`${coord.url}/metrics`)).text();
    expect(metrics).toContain('fedsfda_secure_rounds_total{outcome="aborted"} 1');
    expect(metrics).toContain('fedsfda_secure_rounds_total{outcome="aggregated"} 1');
    expect(metrics).toContain(`fedsfda_secure_excluded_sites_total ${first.secureAggregation!.excluded.length}`);
  });

  it('sites refuse a coordinator that swaps a peer public key', async () => {
    const fx = sites([30, 20, 10]);
    const forged = generateIdentity();
    const hooks: SecAggTestHooks = {
      // The coordinator double replaces hospital-b's round keys with its own in what the other sites receive.
      tamper: (to, ins) =>
        ins.type === 'secagg/share-keys' && to !== 'hospital-b'
          ? { ...ins, keys: ins.keys.map((k) => (k.siteId === 'hospital-b' ? { ...k, maskPublicKey: forged.publicKey, sharePublicKey: forged.publicKey } : k)) }
          : ins,
    };
    const w0 = new Float32Array([0, 0, 0]);
    const coord = await coordinator(fx, linearWeights(w0, 0), { rounds: 1, secAggTestHooks: hooks });
    const running = startSites(coord, fx);
    await waitForSites(coord, 3);
    const [rec] = await coord.start();
    await Promise.all(running.map((r) => r.done));

    expect(rec.aggregated).toBe(false);
    for (const id of ['hospital-a', 'hospital-c']) {
      const f = rec.failures.find((x) => x.siteId === id && x.stage === 'fit');
      expect(f?.reason).toMatch(/share-keys: .*secagg_refused.*bad-signature/);
    }
    expect(Array.from(weightsOf(coord).w)).toEqual([0, 0, 0]);
    // No site trained into a masked vector that left the site.
    for (const r of running) expect(r.progress.some((p) => p.type === 'fit')).toBe(false);
  });

  it('a site refuses a coordinator that presents another identity key than the pinned one', async () => {
    const fx = sites([30, 20, 10]);
    const coord = await coordinator(fx, linearWeights(new Float32Array(3), 0), { rounds: 1 });
    // hospital-a pinned a different key for hospital-b out of band: the coordinator's enrolled key does not match.
    const running = startSites(coord, fx, (s) =>
      s.id === 'hospital-a' ? { peerIdentities: { 'hospital-b': generateIdentity().publicKey, 'hospital-c': fx[2].identity.publicKey } } : {},
    );
    await waitForSites(coord, 3);
    const [rec] = await coord.start();
    await Promise.all(running.map((r) => r.done));
    expect(rec.failures.find((f) => f.siteId === 'hospital-a')?.reason).toMatch(/setup: .*bad-signature.*hospital-b/);
    expect(rec.aggregated).toBe(false);
  });

  it('a statistics round returns only the sum of the sites\' vectors', async () => {
    const fx = sites([30, 20, 10, 40]);
    const statsOf = (d: LinearData): Record<string, Float32Array> => {
      const hist = new Float32Array(4);
      let sumY = 0;
      for (let i = 0; i < d.n; i++) {
        sumY += d.y[i];
        hist[Math.min(3, Math.max(0, Math.floor(d.y[i] + 2)))]++;
      }
      return { count: Float32Array.of(d.n), sumY: Float32Array.of(sumY), histogram: hist };
    };
    const trainerOf = (s: Fixture, odd: boolean): LocalTrainer => ({
      fit: (g, c) => s.trainer.fit(g, c),
      evaluate: (g, c) => s.trainer.evaluate(g, c),
      statistics: (_g, req) => (req.name === 'label-summary' ? (odd ? { count: Float32Array.of(1) } : statsOf(s.data)) : {}),
    });
    const coord = await coordinator(fx, linearWeights(new Float32Array(3), 0), { rounds: 1 });
    // hospital-d returns a different layout: it is left out, the other three are summed.
    startSites(coord, fx, (s) => ({ trainer: trainerOf(s, s.id === 'hospital-d') }));
    await waitForSites(coord, 4);

    const { sums, included } = await coord.runStatisticsRound({ name: 'label-summary', clip: 1000 });
    expect(included).toEqual(['hospital-a', 'hospital-b', 'hospital-c']);
    const want = fx.slice(0, 3).map((s) => statsOf(s.data));
    const tol = quantizationErrorBound({ clip: 1000, scaleBits: maxSafeScaleBits(1000, 3) }, 3) + 1e-3;
    expect(sums.count[0]).toBeCloseTo(60, 5);
    expect(Math.abs(sums.sumY[0] - want.reduce((s, x) => s + x.sumY[0], 0))).toBeLessThanOrEqual(tol);
    for (let i = 0; i < 4; i++) expect(sums.histogram[i]).toBeCloseTo(want.reduce((s, x) => s + x.histogram[i], 0), 5);
    expect(Object.keys(sums).sort()).toEqual(['count', 'histogram', 'sumY']);

    // A name no site computes: the layouts are empty and the round is refused with a typed error.
    await expect(coord.runStatisticsRound({ name: 'nothing', clip: 10 })).rejects.toBeInstanceOf(StatisticsRoundError);
  });
  it('pools a source-statistics package whose sums of squares exceed any fixed clip (ranges sized from the data)', async () => {
    // What a differentially private model produced in the simulation: activations with E[x^2] ~ 1e5 at one
    // batch-norm layer, so the scaled sums of squares (sumSq / pixelBound) are 10334 to 31002.8, above the old
    // fixed clip of 1e4.
    const pixelBound = 1000;
    const statsOf = (k: number): SourceStats => {
      const count = 100 * (k + 1);
      const m = { count, sum: [count * 0.5, -count * 0.25], sumOuter: [count * 2, 0, 0, count * 3] };
      return {
        kind: 'fedsfda-source-stats', version: 1, numClasses: 2, latentDim: 2, confidence: 0.97, numSites: 1,
        bn: { 'enc1.bn1': { count, sum: [count * 7.5, -count * 1e-3], sumSq: [count * 103342.67, count * 2e-6] } },
        classes: [{ labelCount: count, confident: m, labelled: m }, { labelCount: 0, confident: { count: 0, sum: [0, 0], sumOuter: [0, 0, 0, 0] }, labelled: m }],
      };
    };
    const fx = sites([30, 20, 10]);
    const head: WeightSet = [{ name: 'head.w', shape: [1, 1, 2, 2], data: Float32Array.of(1, 2, 3, 4) }];
    const coord = await coordinator(fx, head, { rounds: 1 });
    startSites(coord, fx, (s) => ({
      trainer: {
        fit: (g) => Promise.resolve({ weights: g, numExamples: 1, metrics: {} }),
        evaluate: () => Promise.resolve({ numExamples: 1, metrics: {} }),
        statistics: (_g, req) => (req.name === SOURCE_STATS_REQUEST ? sourceStatsToVectors(statsOf(fx.indexOf(s)), Number(req.config.scale)) : {}),
      },
    }));
    await waitForSites(coord, 3);
    const dir = await mkdtemp(join(tmpdir(), 'fedsfda-stats-range-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));

    const report = await writeRunArtifacts({ weights: () => coord.weights(), runStatisticsRound: (r) => coord.runStatisticsRound(r) }, dir, { pixelBound, classHistogram: false });
    expect(report.failures).toEqual([]);
    expect(report.sourceStats?.sites).toEqual(fx.map((s) => s.id));
    const pooled = JSON.parse(await readFile(join(dir, SOURCE_STATS_FILE), 'utf8')) as SourceStats;
    const n = 100 + 200 + 300;
    const bn = pooled.bn['enc1.bn1'];
    expect(bn.count).toBe(n);
    // Each named vector is quantized at 2^-29 of its own power-of-two bound (clip 1, 3 sites), so every entry is
    // within 1e-6 of its vector's largest entry (float32 output rounding included); the old clip-1e4 step was 2^-16.
    const close = (got: number, want: number, vectorMax: number): void => expect(Math.abs(got - want)).toBeLessThanOrEqual(vectorMax * 1e-6);
    close(bn.sumSq[0], n * 103342.67, n * 103342.67);
    close(bn.sum[0], n * 7.5, n * 7.5);
    close(bn.sum[1], -n * 1e-3, n * 7.5);
    expect(Math.abs(bn.sum[1] + n * 1e-3)).toBeLessThan(n * 1e-3 * 1e-3); // a 1e-4 fraction of its vector's max survives
    expect(pooled.classes[0].labelCount).toBe(n);
    expect(pooled.classes[1].labelCount).toBe(0);
    close(pooled.classes[0].confident.sumOuter[3], n * 3, n * 3);
    expect(pooled.classes[1].confident.count).toBe(0);
  });
});
