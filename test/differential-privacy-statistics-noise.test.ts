/**
 * DP statistics rounds over socket.io with three in-process sites: the released sum carries noise of the planned
 * variance — added by the sites as discrete Gaussian shares before masking (distributed) or by the coordinator after
 * unmasking (central) — on every noised entry and none on the public site count. Without the sites' shares the
 * distributed test fails (the sum would be exact up to quantization).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { startCoordinator, type CoordinatorHandle } from '../coordinator/start-coordinator.ts';
import { FedAvg } from '../coordinator/strategies/fedavg.ts';
import { Enrollment } from '../protocol/enrollment.ts';
import { generateIdentity, type Identity } from '../protocol/identity.ts';
import { composeRunPrivacy, isPrivacyError, seededNoiseSource, statisticsNoiseMultiplier, type PrivacyEvent } from '../protocol/privacy/index.ts';
import { checkStatisticsBudget } from '../coordinator/index.ts';
import { runSite } from '../site-agent/client/run-site.ts';
import type { LocalTrainer } from '../site-agent/client/local-trainer.ts';
import { GENEROUS_TIMEOUTS } from './support/bounds.ts';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

const N = 6000; // noised entries: the variance test below has a stated false-alarm rate for this many
const VALUE = 0.001;

/** Every site sends the same class-histogram-shaped vectors (values in [-1, 1], as a DP contribution's are). */
const trainer: LocalTrainer = {
  fit: () => Promise.reject(new Error('no training here')),
  evaluate: () => Promise.reject(new Error('no evaluation here')),
  statistics: async () => ({
    'hist/pixels': new Float32Array(N).fill(VALUE),
    'hist/p': Float32Array.of(0.5, 0.5),
    'hist/p2': Float32Array.of(0.25, 0.25),
    'hist/sites': Float32Array.of(1),
  }),
};

async function federation(): Promise<CoordinatorHandle> {
  const ids: { id: string; identity: Identity }[] = ['a', 'b', 'c'].map((x) => ({ id: `hospital-${x}`, identity: generateIdentity() }));
  const enrollment = new Enrollment();
  for (const s of ids) enrollment.allow(s.id, s.identity.publicKey);
  const coord = await startCoordinator({
    identity: generateIdentity(),
    enrollment,
    initialWeights: [{ name: 'linear.w', shape: [1], data: Float32Array.of(0) }],
    rounds: 1,
    minSites: 3,
    strategy: new FedAvg(),
    port: 0,
    autoStart: false,
    timeouts: GENEROUS_TIMEOUTS,
    secureAggregation: { clip: 8, maxExamples: 100 },
  });
  cleanups.push(() => coord.close());
  for (const s of ids) {
    const abort = new AbortController();
    cleanups.push(() => abort.abort());
    runSite({ url: coord.url, identity: s.identity, coordinatorPublicKey: coord.publicKey, siteId: s.id, trainer, reconnect: { maxAttempts: 1 }, signal: abort.signal }).catch(() => {});
  }
  await new Promise<void>((resolve) => {
    const check = (): void => {
      if (coord.connectedSites().length >= 3) {
        coord.events.off('siteConnected', check);
        resolve();
      }
    };
    coord.events.on('siteConnected', check);
    check();
  });
  return coord;
}

/** Sample variance of the released pixels around the true sum 3 x VALUE. */
function residualVariance(sums: Record<string, Float32Array>): number {
  const v = sums['hist/pixels'];
  let s = 0;
  for (const x of v) s += (x - 3 * VALUE) ** 2;
  return s / v.length;
}

// n = 6000 draws: the sample variance / true variance lies within 1 +- 5 sqrt(2/n) = 1 +- 0.092 except with
// probability < 1e-6 (5 standard deviations; the quantization error, <= 3 x 2^-(s+1), is far below the noise).
const TOL = 5 * Math.sqrt(2 / N);

describe('DP statistics rounds: the released sum carries the planned noise', () => {
  it('distributed: three sites add discrete Gaussian shares; the sum has 3 sigma^2 (integer units) and an exact site count', async () => {
    const coord = await federation();
    const z = 1.3;
    const U = 20;
    const r = await coord.runStatisticsRound({ name: 'class-histogram', config: {}, dp: { mode: 'distributed', noiseMultiplier: z, maxUnits: U, delta: 1e-5, label: 'stats/test', noise: seededNoiseSource(1) } });
    expect(r.included).toHaveLength(3);
    const p = r.privacy!;
    expect(p.event.mechanism).toBe('distributed-discrete-gaussian');
    const want = (3 * p.plan.distributed!.siteSigma ** 2) / 4 ** p.scaleBits;
    expect(Math.abs(residualVariance(r.sums) / want - 1)).toBeLessThan(TOL);
    // At least the Gaussian mechanism's std z x (1/U) on the scaled sum (one unit moves it by 1/U).
    expect(Math.sqrt(want)).toBeGreaterThanOrEqual(z / U);
    expect(r.sums['hist/sites'][0]).toBe(3);
    expect(coord.status().privacyLedger!.statistics!.releases).toEqual(['stats/test']);
  }, 120_000);

  it('central: the coordinator adds N(0, (z / U)^2) to the unmasked sum', async () => {
    const coord = await federation();
    const z = 0.8;
    const U = 10;
    const r = await coord.runStatisticsRound({ name: 'class-histogram', config: {}, dp: { mode: 'central', noiseMultiplier: z, maxUnits: U, delta: 1e-5, label: 'stats/test', noise: seededNoiseSource(2) } });
    expect(r.privacy!.event).toMatchObject({ mechanism: 'sampled-gaussian', samplingRate: 1, noiseMultiplier: z, steps: 1 });
    expect(Math.abs(residualVariance(r.sums) / (z / U) ** 2 - 1)).toBeLessThan(TOL);
    expect(r.sums['hist/sites'][0]).toBe(3);
  }, 120_000);
});

describe('the run budget across training and statistics (maxTotalEpsilon)', () => {
  const training: PrivacyEvent[] = [{ mechanism: 'sampled-gaussian', label: 'dp-fedavg', samplingRate: 1, noiseMultiplier: 5, steps: 12 }];
  const statistics = (maxTotalEpsilon: number) => ({ pixelBound: 1, differentialPrivacy: { targetEpsilon: 2, maxTotalEpsilon } });
  it('refuses, before any release, when planned training + both statistics releases compose above the budget', () => {
    const z = statisticsNoiseMultiplier({ targetEpsilon: 2 }, 2);
    const stat = (i: number): PrivacyEvent => ({ mechanism: 'sampled-gaussian', label: `s${i}`, samplingRate: 1, noiseMultiplier: z, steps: 1 });
    const total = composeRunPrivacy(training, [stat(0), stat(1)], 1e-5).epsilon;
    expect(() => checkStatisticsBudget(training, statistics(total * 1.01))).not.toThrow();
    let err: unknown;
    try {
      checkStatisticsBudget(training, statistics(total * 0.99));
    } catch (e) {
      err = e;
    }
    expect(isPrivacyError(err, 'budget-exceeded')).toBe(true);
    expect((err as Error).message).toMatch(/^training \(epsilon [0-9.]+\) and 2 statistics release\(s\) at noise multiplier [0-9.]+ spend epsilon [0-9.]+ > maxTotalEpsilon/);
    expect(() => checkStatisticsBudget(training, { pixelBound: 1 })).not.toThrow(); // no DP statistics: nothing to check
  });
});
