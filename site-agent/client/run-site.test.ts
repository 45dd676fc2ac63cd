/**
 * Site client over the in-memory transport: reconnect after a dropped connection (the round goes on without the
 * site, the next one includes it), a pinned-key mismatch, abort, and backoff bounds.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { startCoordinator, type CoordinatorHandle } from '../../coordinator/start-coordinator.ts';
import { Enrollment } from '../../protocol/enrollment.ts';
import { generateIdentity } from '../../protocol/identity.ts';
import { createMemoryTransportPair, type SiteTransport } from '../../protocol/memory-transport.ts';
import type { WeightSet } from '../../protocol/named-tensor.ts';
import { backoffDelay } from './backoff.ts';
import type { LocalTrainer } from './local-trainer.ts';
import { DEFAULT_GIVE_UP_AFTER_MS, DEFAULT_MAX_ATTEMPTS, runSite } from './run-site.ts';
import { SiteError, type SiteProgress } from './site-session.ts';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

const initial: WeightSet = [{ name: 'w', shape: [3], data: new Float32Array([1, 2, 3]) }];

async function setup(rounds: number, autoStart = true, extra: Partial<Parameters<typeof startCoordinator>[0]> = {}) {
  const site = generateIdentity();
  const enrollment = new Enrollment().allow('site-a', site.publicKey);
  const coord = await startCoordinator({ identity: generateIdentity(), enrollment, initialWeights: initial, rounds, minSites: 1, port: 0, autoStart, ...extra });
  cleanups.push(() => coord.close());
  /** Each connection's link; `drop()` cuts it under both ends (a flaky network, a missed heartbeat). */
  const transports: { drop(): void }[] = [];
  const connect = async (): Promise<SiteTransport> => {
    const pair = createMemoryTransportPair(`site-a#${transports.length}`);
    transports.push(pair);
    coord.accept(pair.coordinator);
    return pair.site;
  };
  return { site, coord, transports, connect };
}

function doubling(onFit?: (round: number) => void): LocalTrainer {
  return {
    fit: async (g, c) => {
      onFit?.(c.round);
      return { weights: g.map((t) => ({ ...t, data: t.data.map((x) => 2 * x) })), numExamples: 4, metrics: { trainLoss: 0.5 } };
    },
    evaluate: async () => ({ numExamples: 4, metrics: { dice: 1 } }),
  };
}

describe('runSite', () => {
  it('without a reconnect grace: reconnects with backoff after the link drops mid-round and trains in the next round', async () => {
    const { site, coord, transports, connect } = await setup(2, true, { timeouts: { reconnectGraceMs: 0 } });
    // Drop the link the first time the trainer is asked to fit (as a flaky network would).
    let dropped = false;
    const trainer = doubling((round) => {
      if (round === 1 && !dropped) {
        dropped = true;
        transports[0].drop();
      }
    });
    const [result, history] = await Promise.all([
      runSite({ url: 'memory', identity: site, coordinatorPublicKey: coord.publicKey, siteId: 'site-a', trainer, connect, reconnect: { initialDelayMs: 1, maxDelayMs: 5 } }),
      coord.done,
    ]);
    expect(result.connections).toBe(2);
    expect(result.rounds).toEqual([2]);
    expect(history[0]).toMatchObject({ aggregated: false, failures: [expect.objectContaining({ siteId: 'site-a', stage: 'fit', code: 'disconnected' })] });
    expect(history[1]).toMatchObject({ aggregated: true, failures: [] });
    expect(Array.from(coord.weights()[0].data)).toEqual([2, 4, 6]);
  });

  it('with the default reconnect grace: a link dropped mid-fit costs nothing, the re-issued request is answered from the cache', async () => {
    const { site, coord, transports, connect } = await setup(2);
    let fits = 0;
    const trainer = doubling((round) => {
      fits++;
      if (round === 1 && transports.length === 1) transports[0].drop();
    });
    const [result, history] = await Promise.all([
      runSite({ url: 'memory', identity: site, coordinatorPublicKey: coord.publicKey, siteId: 'site-a', trainer, connect, reconnect: { initialDelayMs: 1, maxDelayMs: 5 } }),
      coord.done,
    ]);
    expect(result.connections).toBe(2);
    expect(fits).toBe(2); // once per round
    expect(history.map((r) => ({ aggregated: r.aggregated, failures: r.failures }))).toEqual([
      { aggregated: true, failures: [] },
      { aggregated: true, failures: [] },
    ]);
    expect(Array.from(coord.weights()[0].data)).toEqual([4, 8, 12]);
  });

  it('does not wait for a site that ended its session on purpose (it is not coming back for the open request)', async () => {
    const { site, coord, connect } = await setup(1);
    const stop = new AbortController();
    const trainer = doubling(() => stop.abort());
    const [outcome, history] = await Promise.all([
      runSite({ url: 'memory', identity: site, coordinatorPublicKey: coord.publicKey, siteId: 'site-a', trainer, connect, signal: stop.signal }).catch((e: SiteError) => e.code),
      coord.done,
    ]);
    expect(outcome).toBe('aborted');
    // Failed at once (the default grace of 5 minutes would outlast this test's bound).
    expect(history[0].failures).toEqual([expect.objectContaining({ siteId: 'site-a', stage: 'fit', code: 'disconnected' })]);
  });

  it('rejoins a round after a drop mid-upload: no retraining, the upload resumes at the first missing chunk', async () => {
    const big: WeightSet = [{ name: 'w', shape: [5000], data: Float32Array.from({ length: 5000 }, (_, i) => i) }];
    const { site, coord } = await setup(1, true, { initialWeights: big, timeouts: { reconnectGraceMs: 60_000 } });
    let attempt = 0;
    const connect = async (): Promise<SiteTransport> => {
      const pair = createMemoryTransportPair(`site-a#${attempt}`);
      coord.accept(pair.coordinator);
      if (attempt++ === 0) {
        // Cut the first connection after the site has sent 5 upload chunks (the only envelopes over 1000 bytes).
        const send = pair.site.send.bind(pair.site);
        let chunks = 0;
        pair.site.send = ((event: 'hello' | 'sealed', payload: never) => {
          send(event, payload);
          if (event === 'sealed' && (payload as Uint8Array).length > 1000 && ++chunks === 5) pair.drop();
        }) as typeof pair.site.send;
      }
      return pair.site;
    };
    let fits = 0;
    const progress: SiteProgress[] = [];
    const trainer = doubling(() => fits++);
    const [result, history] = await Promise.all([
      runSite({ url: 'memory', identity: site, coordinatorPublicKey: coord.publicKey, siteId: 'site-a', trainer, connect, chunkBytes: 1000, reconnect: { initialDelayMs: 1, maxDelayMs: 5 }, onProgress: (p) => progress.push(p) }),
      coord.done,
    ]);
    expect(result.connections).toBe(2);
    expect(fits).toBe(1); // trained once; the re-issued request was answered from the cache
    expect(progress.filter((p) => p.type === 'connected').map((p) => (p as { attempt: number }).attempt)).toEqual([1, 2]);
    expect(history[0]).toMatchObject({ aggregated: true, failures: [] });
    const fitEvents = progress.filter((p) => p.type === 'fit');
    expect(fitEvents).toHaveLength(1);
    const ev = fitEvents[0] as Extract<SiteProgress, { type: 'fit' }>;
    expect(ev.reused).toBe(true);
    expect(ev.resumedFrom).toBeGreaterThanOrEqual(5);
    expect(ev.resumedFrom).toBeLessThan(Math.ceil(ev.updateBytes / 1000));
    expect(coord.weights()[0].data[4999]).toBe(2 * 4999);
  });

  it('refuses a coordinator whose key differs from the pinned one, without retrying', async () => {
    const { site, connect } = await setup(1);
    const err = await runSite({ url: 'memory', identity: site, coordinatorPublicKey: generateIdentity().publicKey, siteId: 'site-a', trainer: doubling(), connect }).catch((e) => e);
    expect(err).toBeInstanceOf(SiteError);
    expect(err.code).toBe('wrong_coordinator');
  });

  it('stops when its signal aborts', async () => {
    const { site, coord, connect } = await setup(1, false); // no rounds start: the site just waits, connected
    const ac = new AbortController();
    const joined = new Promise<void>((r) => coord.events.on('siteConnected', () => r()));
    const run = runSite({ url: 'memory', identity: site, coordinatorPublicKey: coord.publicKey, siteId: 'site-a', trainer: doubling(), connect, signal: ac.signal });
    await joined;
    const left = new Promise<void>((r) => coord.events.on('siteDisconnected', () => r()));
    ac.abort();
    const err = await run.catch((e) => e);
    expect(err).toBeInstanceOf(SiteError);
    expect(err.code).toBe('aborted');
    await left; // the coordinator saw the session end
    expect(coord.connectedSites()).toEqual([]);
  });

  it('refuses bad options before connecting', async () => {
    let connects = 0;
    const connect = async (): Promise<SiteTransport> => {
      connects++;
      throw new Error('unreachable');
    };
    const base = { url: 'memory', identity: generateIdentity(), trainer: doubling(), connect };
    const key = generateIdentity().publicKey;
    await expect(runSite({ ...base, coordinatorPublicKey: key, siteId: 'bad id' })).rejects.toMatchObject({ code: 'bad_options' });
    await expect(runSite({ ...base, coordinatorPublicKey: 'not-a-key', siteId: 'site-a' })).rejects.toMatchObject({ code: 'bad_options' });
    await expect(runSite({ ...base, coordinatorPublicKey: key, siteId: 'site-a', enrollmentToken: 'short' })).rejects.toMatchObject({ code: 'bad_options' });
    expect(connects).toBe(0);
  });

  it('gives up after maxAttempts failed connection attempts', async () => {
    const err = await runSite({
      url: 'memory',
      identity: generateIdentity(),
      coordinatorPublicKey: generateIdentity().publicKey,
      siteId: 'site-a',
      trainer: doubling(),
      reconnect: { maxAttempts: 2, initialDelayMs: 1, maxDelayMs: 1 },
      connect: async () => {
        throw new Error('ECONNREFUSED');
      },
    }).catch((e) => e);
    expect(err).toBeInstanceOf(SiteError);
    expect(err.code).toBe('gave_up');
  });

  it('backoff grows exponentially with equal jitter, capped', () => {
    expect(backoffDelay(0, { initialDelayMs: 100 }, () => 0)).toBe(50);
    expect(backoffDelay(0, { initialDelayMs: 100 }, () => 1)).toBe(100);
    expect(backoffDelay(3, { initialDelayMs: 100 }, () => 1)).toBe(800);
    expect(backoffDelay(20, { initialDelayMs: 100, maxDelayMs: 1000 }, () => 1)).toBe(1000);
  });

  it('the default retry budget is bounded and outlasts a coordinator crash-looping under a supervisor (5 min)', () => {
    // The sleeps before attempts 2..DEFAULT_MAX_ATTEMPTS with the default schedule (0.5 s doubling, 30 s cap), at the
    // shortest and the longest jitter: a site gives up after 6.3-12.5 min without a session, never sooner, so a
    // supervisor's restart back-off (Kubernetes caps CrashLoopBackOff at 5 min) cannot exhaust it; any session resets it.
    const total = (r: number): number => Array.from({ length: DEFAULT_MAX_ATTEMPTS - 1 }, (_, i) => backoffDelay(i + 1, {}, () => r)).reduce((a, b) => a + b, 0);
    expect(total(0)).toBeGreaterThan(5 * 60_000);
    expect(total(1)).toBeLessThan(DEFAULT_GIVE_UP_AFTER_MS);
    expect(Number.isFinite(DEFAULT_MAX_ATTEMPTS)).toBe(true);
  });
});
