/**
 * The REST status and round history over a real socket.io federation: `/status` validates against the schema the
 * dashboard imports (per-site state, byte counts, last metrics, timeline, round 0), `/rounds` pages.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { runSite } from '../../site-agent/client/index.ts';
import { linearCoordinator, linearSites } from '../../test/support/linear-federation.ts';
import type { CoordinatorHandle } from '../start-coordinator.ts';
import { FedAvg } from '../strategies/index.ts';
import { coordinatorStatusSchema, roundsPageSchema } from './status.ts';

const handles: CoordinatorHandle[] = [];
afterEach(async () => {
  for (const h of handles.splice(0)) await h.close();
});

describe('REST status', () => {
  it('reports every site, the timeline with round 0, and pages the history', async () => {
    const sites = linearSites(['site-a', 'site-b'], 7);
    const coord = await linearCoordinator(sites, { rounds: 3, minSites: 2, strategy: new FedAvg({ localEpochs: 1, lr: 0.1, evaluateInitialModel: true }) });
    handles.push(coord);
    const before = coordinatorStatusSchema.parse(((await (await fetch(`${coord.url}/status`)).json()) as object));
    expect(before.sites.map((s) => [s.siteId, s.connected, s.lastSeen])).toEqual([['site-a', false, null], ['site-b', false, null]]);
    const runs = sites.map((s) => runSite({ url: coord.url, identity: s.identity, coordinatorPublicKey: coord.publicKey, siteId: s.id, trainer: s.trainer }));
    const history = await coord.done;
    await Promise.all(runs);

    expect(history.map((r) => r.round)).toEqual([0, 1, 2, 3]);
    expect(history[0]).toMatchObject({ aggregated: false, fitMetrics: {} });
    expect(history[0].sites.every((s) => s.evalMetrics !== null && s.numExamples === 0)).toBe(true);
    expect(coord.outcome()).toMatchObject({ ok: true, rounds: 3, aggregatedRounds: 3 });

    const status = coordinatorStatusSchema.parse(((await (await fetch(`${coord.url}/status`)).json()) as object));
    expect(status.stage).toBe('finished');
    expect(status.timeline.map((t) => [t.round, t.aggregated])).toEqual([[0, false], [1, true], [2, true], [3, true]]);
    for (const s of status.sites) {
      expect(s.sessions).toBe(1);
      expect(s.lastRound).toBe(3);
      expect(s.bytesSent).toBeGreaterThan(0);
      expect(s.bytesReceived).toBeGreaterThan(0);
      expect(s.lastEvalMetrics?.mse).toBeGreaterThan(0);
      expect(s.lastFitMetrics?.trainLoss).toBeGreaterThan(0);
      expect(s.lastFailure).toBeNull();
    }
    expect(status.secureAggregation).toMatchObject({ enabled: false, current: null, runsCompleted: 0 });
    // The per-round byte budget: the default limit, the last round's bytes per site, nobody refused.
    expect(status.byteBudget?.perRoundBytes).toBeGreaterThan(16 * 1024 * 1024);
    expect(status.byteBudget?.period).toBe('round 3');
    expect(status.byteBudget?.sites.map((s) => [s.siteId, s.refused])).toEqual([['site-a', false], ['site-b', false]]);
    for (const s of status.byteBudget?.sites ?? []) expect(s.received).toBeGreaterThan(0);

    const page = roundsPageSchema.parse(await (await fetch(`${coord.url}/rounds?offset=1&limit=2`)).json());
    expect(page.rounds.map((r) => r.round)).toEqual([1, 2]);
    expect(page).toMatchObject({ total: 4, offset: 1, limit: 2, nextOffset: 3 });
    const rest = roundsPageSchema.parse(await (await fetch(`${coord.url}/rounds?offset=3`)).json());
    expect(rest).toMatchObject({ total: 4, nextOffset: null });
    expect((await fetch(`${coord.url}/rounds?limit=0`)).status).toBe(400);
    const metrics = await (await fetch(`${coord.url}/metrics`)).text();
    expect(metrics).toMatch(/fedsfda_round_duration_seconds_count 3\n/);
    expect(metrics).toMatch(/fedsfda_stage_duration_seconds_count\{stage="fit"\} 3\n/);
    expect(metrics).toContain('process_resident_memory_bytes');
  }, 120_000);
});
