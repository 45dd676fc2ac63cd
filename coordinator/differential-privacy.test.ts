/**
 * Differential privacy in a running coordinator (in-memory transport): the status reports what was spent, a run
 * over its budget refuses to start before round 1, and with secure aggregation the sites add the noise themselves.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { Enrollment } from '../protocol/enrollment.ts';
import { generateIdentity, type Identity } from '../protocol/identity.ts';
import { createMemoryTransportPair } from '../protocol/memory-transport.ts';
import type { WeightSet } from '../protocol/named-tensor.ts';
import { isPrivacyError, sampledGaussianEpsilon } from '../protocol/privacy/index.ts';
import { runSite } from '../site-agent/client/run-site.ts';
import type { LocalTrainer } from '../site-agent/client/local-trainer.ts';
import type { SiteProgress } from '../site-agent/client/index.ts';
import { startCoordinator, type CoordinatorHandle, type CoordinatorOptions } from './start-coordinator.ts';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

const initial: WeightSet = [{ name: 'w', shape: [4], data: new Float32Array(4) }];
const trainer: LocalTrainer = {
  fit: async (g) => ({ weights: g.map((t) => ({ ...t, data: t.data.map((x) => x + 10) })), numExamples: 7, metrics: { trainLoss: 1 } }),
  evaluate: async () => ({ numExamples: 3, metrics: { dice: 0.5 } }),
};

function setup(n: number): { sites: { id: string; identity: Identity }[]; enrollment: Enrollment } {
  const sites = Array.from({ length: n }, (_, k) => ({ id: `site-${k}`, identity: generateIdentity() }));
  const enrollment = new Enrollment();
  for (const s of sites) enrollment.allow(s.id, s.identity.publicKey);
  return { sites, enrollment };
}

async function start(enrollment: Enrollment, extra: Partial<CoordinatorOptions>): Promise<CoordinatorHandle> {
  const h = await startCoordinator({ identity: generateIdentity(), enrollment, initialWeights: initial, rounds: 2, minSites: 3, port: 0, ...extra });
  cleanups.push(() => h.close());
  return h;
}

function memorySite(coord: CoordinatorHandle, id: string, identity: Identity, onProgress?: (p: SiteProgress) => void) {
  return runSite({
    ...(onProgress ? { onProgress } : {}),
    url: 'memory',
    identity,
    coordinatorPublicKey: coord.publicKey,
    siteId: id,
    trainer,
    reconnect: { maxAttempts: 1 },
    connect: async () => {
      const pair = createMemoryTransportPair(id);
      coord.accept(pair.coordinator);
      return pair.site;
    },
  });
}

describe('coordinator with differential privacy', () => {
  it('clips and noises every round and reports epsilon on its status', async () => {
    const { sites, enrollment } = setup(3);
    const coord = await start(enrollment, { differentialPrivacy: { noiseMultiplier: 2, clip: 1, delta: 1e-5, seed: 3 } });
    expect(coord.status().privacy).toMatchObject({ mode: 'central', roundsAccounted: 0, epsilon: 0, plannedRounds: 2, noiseSource: 'seeded' });
    await Promise.all([...sites.map((s) => memorySite(coord, s.id, s.identity)), coord.done]);
    const p = coord.status().privacy!;
    expect(p.roundsAccounted).toBe(2);
    expect(p.epsilon).toBeCloseTo(sampledGaussianEpsilon({ samplingRate: 1, noiseMultiplier: 2, steps: 2, delta: 1e-5 }).epsilon, 12);
    expect(p.byLabel['dp-fedavg']).toBeCloseTo(p.epsilon, 12);
    // every site moved +10 per coordinate (norm 20): the clipped mean moves by at most C = 1 per round, plus noise
    const w = coord.weights()[0].data;
    const moved = Math.hypot(...Array.from(w));
    expect(moved).toBeLessThan(2 + 6 * 2 * Math.sqrt(2) * 2); // 2 rounds x C + 6 sd of the noise (std z*C/m per round)
    expect(moved).toBeGreaterThan(0);
    expect(coord.history()[1].fitMetrics['dp.epsilon']).toBeCloseTo(p.epsilon, 9); // per-round epsilon in the round history
  });

  it('refuses to start a run whose planned rounds exceed the budget (typed error, before round 1)', async () => {
    const { enrollment } = setup(3);
    const err = await startCoordinator({
      identity: generateIdentity(),
      enrollment,
      initialWeights: initial,
      rounds: 100,
      minSites: 3,
      port: 0,
      differentialPrivacy: { noiseMultiplier: 1, clip: 1, maxEpsilon: 8 },
    }).catch((e: unknown) => e);
    expect(isPrivacyError(err, 'budget-exceeded')).toBe(true);
    expect((err as Error).message).toMatch(/100 rounds .* over the budget of 8/);
  });

  it('with secure aggregation the sites add discrete Gaussian shares: the coordinator only unmasks a noised sum', async () => {
    const { sites, enrollment } = setup(3);
    const coord = await start(enrollment, { differentialPrivacy: { noiseMultiplier: 2, clip: 1 }, secureAggregation: { clip: 8, maxExamples: 100 } });
    const progress: SiteProgress[][] = sites.map(() => []);
    await Promise.all([...sites.map((s, k) => memorySite(coord, s.id, s.identity, (p) => progress[k].push(p))), coord.done]);
    const p = coord.status().privacy!;
    expect(p).toMatchObject({ mode: 'distributed', roundsAccounted: 2, noiseSource: 'crypto' });
    expect(p.distributed!.siteSigma).toBeGreaterThan(0);
    // tau underflows for sigma in the thousands of quantization steps: exactly the Gaussian mechanism at z = 2
    const want = sampledGaussianEpsilon({ samplingRate: 1, noiseMultiplier: 2, steps: 2, delta: 1e-5 }).epsilon;
    expect(p.epsilon).toBeCloseTo(want, 9);
    const rec = coord.history()[1];
    expect(rec.secureAggregation).toMatchObject({ included: sites.map((s) => s.id), error: null });
    const moved = Math.hypot(...Array.from(coord.weights()[0].data));
    expect(moved).toBeGreaterThan(0);
    expect(moved).toBeLessThan(2 + 6 * Math.sqrt(2) * rec.fitMetrics['dp.noiseStd'] * 2);
    // each site accounts for itself from what it added and the round's quantization, and logs it
    for (const log of progress) {
      const fits = log.filter((e): e is Extract<SiteProgress, { type: 'fit' }> => e.type === 'fit');
      expect(fits).toHaveLength(2);
      expect(fits[1].metrics['dp.epsilon']).toBeCloseTo(want, 9);
      expect(fits[1].metrics['dp.updateNorm']).toBeCloseTo(20, 3); // +10 on 4 weights: clipped to 1 before it left
    }
  });
});
