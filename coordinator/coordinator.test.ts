/**
 * Coordinator behaviour over the in-memory transport: checkpoint + resume after a restart, per-stage timeouts
 * (fake timers, explicit barriers) with the failure handed to the strategy, and the FedProx config reaching sites.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { Enrollment } from '../protocol/enrollment.ts';
import { generateIdentity, type Identity } from '../protocol/identity.ts';
import { createMemoryTransportPair } from '../protocol/memory-transport.ts';
import type { WeightSet } from '../protocol/named-tensor.ts';
import { runSite } from '../site-agent/client/run-site.ts';
import type { LocalTrainer } from '../site-agent/client/local-trainer.ts';
import { metricValue } from './metrics/index.ts';
import { CheckpointStore } from './storage/index.ts';
import { startCoordinator, type CoordinatorHandle, type CoordinatorOptions } from './start-coordinator.ts';
import { FedAvg } from './strategies/fedavg.ts';
import { FedProx } from './strategies/fedprox.ts';
import type { FitConfig } from '../protocol/messages.ts';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  vi.useRealTimers();
  while (cleanups.length) await cleanups.pop()!();
});

/** Trainer that moves every weight by +1 per round and reports n examples; records the configs it saw. */
function plusOneTrainer(n: number): LocalTrainer & { configs: FitConfig[] } {
  const configs: FitConfig[] = [];
  return {
    configs,
    fit: async (g, config) => {
      configs.push(config);
      return { weights: g.map((t) => ({ ...t, data: t.data.map((x) => x + 1) })), numExamples: n, metrics: { trainLoss: 1 / config.round } };
    },
    evaluate: async () => ({ numExamples: n, metrics: { dice: 0.5 } }),
  };
}

const initial: WeightSet = [{ name: 'w', shape: [2], data: new Float32Array([0, 10]) }];

async function coordinator(sites: Array<{ id: string; identity: Identity }>, extra: Partial<CoordinatorOptions>): Promise<CoordinatorHandle> {
  const enrollment = new Enrollment();
  for (const s of sites) enrollment.allow(s.id, s.identity.publicKey);
  const h = await startCoordinator({ identity: generateIdentity(), enrollment, initialWeights: initial, rounds: 1, minSites: sites.length, port: 0, ...extra });
  cleanups.push(() => h.close());
  return h;
}

/** Run a site over an in-memory transport into `coord`. */
function memorySite(coord: CoordinatorHandle, id: string, identity: Identity, trainer: LocalTrainer) {
  return runSite({
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

describe('coordinator', () => {
  it('checkpoints every round and resumes after a restart', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'fedsfda-ckpt-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const s = { id: 'site-a', identity: generateIdentity() };

    const first = await coordinator([s], { checkpointDir: dir, rounds: 1 });
    await Promise.all([memorySite(first, s.id, s.identity, plusOneTrainer(5)), first.done]);
    await first.close();
    const saved = await new CheckpointStore(dir).load();
    expect(saved?.round).toBe(1);
    expect(Array.from(saved!.weights[0].data)).toEqual([1, 11]);

    // A new coordinator on the same directory continues with round 2 from the saved weights and history.
    const second = await coordinator([s], { checkpointDir: dir, rounds: 2 });
    const trainer = plusOneTrainer(5);
    const [, history] = await Promise.all([memorySite(second, s.id, s.identity, trainer), second.done]);
    expect(trainer.configs.map((c) => c.round)).toEqual([2]);
    expect(history.map((r) => r.round)).toEqual([1, 2]);
    expect(Array.from(second.weights()[0].data)).toEqual([2, 12]);
    expect((await new CheckpointStore(dir).load())?.round).toBe(2);
  });

  it('runs afterRounds with its handle after the last round, also when a resumed checkpoint leaves no round to run', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'fedsfda-after-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const s = { id: 'site-a', identity: generateIdentity() };
    const seen: number[] = [];
    const afterRounds = async (h: CoordinatorHandle): Promise<void> => {
      seen.push(h.weights()[0].data[0]);
    };
    const first = await coordinator([s], { checkpointDir: dir, rounds: 1, afterRounds });
    await Promise.all([memorySite(first, s.id, s.identity, plusOneTrainer(5)), first.done]);
    await first.close();
    // Same directory, same number of rounds: nothing to train, the hook still gets a live handle.
    const second = await coordinator([s], { checkpointDir: dir, rounds: 1, afterRounds });
    const history = await second.done;
    expect(history.map((r) => r.round)).toEqual([1]);
    expect(seen).toEqual([1, 1]);
  });

  it('times out a stuck site per stage, passes the failure to the strategy, and aggregates the rest', async () => {
    const good = { id: 'site-good', identity: generateIdentity() };
    const stuck = { id: 'site-stuck', identity: generateIdentity() };
    const strategy = new FedAvg();
    const seenFailures: string[] = [];
    const aggregateFit = strategy.aggregateFit.bind(strategy);
    strategy.aggregateFit = (round, results, failures, global) => {
      seenFailures.push(...failures.map((f) => `${f.siteId}:${f.code}`));
      return aggregateFit(round, results, failures, global);
    };
    const coord = await coordinator([good, stuck], { autoStart: false, minSites: 1, strategy, timeouts: { fitMs: 60_000, evaluateMs: 60_000 } });

    let stuckCalled!: () => void;
    const stuckFitStarted = new Promise<void>((r) => (stuckCalled = r));
    const stuckTrainer: LocalTrainer = {
      fit: () => {
        stuckCalled();
        return new Promise(() => {}); // never answers
      },
      evaluate: () => new Promise(() => {}),
    };
    // Barriers on the coordinator's side: the good site's replies have been accepted.
    const replied = (stage: 'fit' | 'evaluate') =>
      new Promise<void>((r) => coord.events.on('siteReplied', (rep) => rep.stage === stage && rep.siteId === good.id && r()));
    const goodFitDone = replied('fit');
    const goodEvalDone = replied('evaluate');
    const pGood = memorySite(coord, good.id, good.identity, plusOneTrainer(3));
    const pStuck = memorySite(coord, stuck.id, stuck.identity, stuckTrainer).catch(() => null);
    await new Promise<void>((resolve) => {
      const check = (): void => void (coord.connectedSites().length === 2 && resolve());
      coord.events.on('siteConnected', check);
      check();
    });

    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const done = coord.start();
    await Promise.all([stuckFitStarted, goodFitDone]);
    const evaluating = new Promise<void>((r) => coord.events.on('stage', (s) => s === 'evaluate' && r()));
    vi.advanceTimersByTime(60_000);
    await evaluating;
    await goodEvalDone;
    vi.advanceTimersByTime(60_000);
    const history = await done;
    vi.useRealTimers();

    expect(seenFailures).toEqual(['site-stuck:timeout']);
    expect(history[0].aggregated).toBe(true);
    expect(Array.from(coord.weights()[0].data)).toEqual([1, 11]); // the good site's update alone
    expect(history[0].failures.map((f) => `${f.stage}:${f.siteId}:${f.code}`)).toEqual(['fit:site-stuck:timeout', 'evaluate:site-stuck:timeout']);
    expect(history[0].sites.find((s) => s.siteId === 'site-good')?.evalMetrics).toEqual({ dice: 0.5 });
    await pGood;
    await coord.close();
    await pStuck;
  });

  it('aggregates with one reply when minSites allows it, and FedProx mu reaches the trainer', async () => {
    const a = { id: 'site-a', identity: generateIdentity() };
    const coord = await coordinator([a], { strategy: new FedProx({ proximalMu: 0.05, localEpochs: 3, lr: 0.2 }) });
    const trainer = plusOneTrainer(7);
    const [, history] = await Promise.all([memorySite(coord, a.id, a.identity, trainer), coord.done]);
    expect(trainer.configs[0]).toEqual({ round: 1, localEpochs: 3, lr: 0.2, proximalMu: 0.05 });
    expect(history[0]).toMatchObject({ round: 1, aggregated: true, meanTrainLoss: 1 });
    expect(coord.status()).toMatchObject({ stage: 'finished', strategy: 'fedprox', connectedSites: [] });
  });

  it('enrolls a new site with a one-time token (persisted), and refuses the token a second time', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'fedsfda-enroll-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const enrollment = new Enrollment();
    const token = enrollment.addToken(Enrollment.newToken());
    const path = join(dir, 'enroll.json');
    const coord = await startCoordinator({ identity: generateIdentity(), enrollment, enrollmentPath: path, initialWeights: initial, rounds: 1, minSites: 1, port: 0 });
    cleanups.push(() => coord.close());
    const newcomer = generateIdentity();
    const connect = (id: string) => async () => {
      const pair = createMemoryTransportPair(id);
      coord.accept(pair.coordinator);
      return pair.site;
    };
    const base = { url: 'memory', coordinatorPublicKey: coord.publicKey, reconnect: { maxAttempts: 1 } };
    const [res] = await Promise.all([
      runSite({ ...base, identity: newcomer, siteId: 'site-new', trainer: plusOneTrainer(2), enrollmentToken: token, connect: connect('site-new') }),
      coord.done,
    ]);
    expect(res.rounds).toEqual([1]);
    const again = await runSite({ ...base, identity: generateIdentity(), siteId: 'site-other', trainer: plusOneTrainer(2), enrollmentToken: token, connect: connect('site-other') }).catch((e) => e);
    expect(again.replyCode).toBe('not_enrolled');
    await coord.close(); // waits for the enrollment file write
    const saved = await Enrollment.load(path);
    expect(saved.siteIds()).toEqual(['site-new']);
    expect(saved.toJSON().tokens).toEqual([]);
  });

  it('closes a connection that never completes the handshake, and fails the run when too few sites come', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const coord = await coordinator([{ id: 'site-a', identity: generateIdentity() }], { timeouts: { handshakeMs: 1_000, waitForSitesMs: 5_000 } });
    const pair = createMemoryTransportPair('silent');
    const closed = new Promise<string>((r) => pair.site.onClose((reason) => r(reason)));
    coord.accept(pair.coordinator);
    vi.advanceTimersByTime(1_000);
    expect(await closed).toBe('peer_left'); // the coordinator closed it on purpose
    expect(await metricValue(coord.metrics.handshakes, { outcome: 'timeout' })).toBe(1);
    const failed = coord.done.catch((e) => e);
    vi.advanceTimersByTime(5_000);
    expect(await failed).toMatchObject({ code: 'not_enough_sites' });
  });

  it('keeps training when a checkpoint cannot be written, and counts it', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'fedsfda-ckpt-bad-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    // A non-empty directory where round 1's weights file must go makes that one save fail (rename cannot replace it).
    await mkdir(join(dir, 'weights-r1.fsws'));
    await writeFile(join(dir, 'weights-r1.fsws', 'occupied'), '');
    const s = { id: 'site-a', identity: generateIdentity() };
    const coord = await coordinator([s], { checkpointDir: dir, rounds: 2 });
    const [, history] = await Promise.all([memorySite(coord, s.id, s.identity, plusOneTrainer(1)), coord.done]);
    expect(history).toHaveLength(2);
    expect((await new CheckpointStore(dir).load())?.round).toBe(2);
    expect(await metricValue(coord.metrics.checkpointFailures)).toBe(1);
  });

  it('refuses an oversized update at once (no waiting for the stage timeout) and keeps going', async () => {
    const s = { id: 'site-a', identity: generateIdentity() };
    const coord = await coordinator([s], { maxUpdateBytes: 100, rounds: 1 }); // fitMs stays at its 30 min default
    const bloated: LocalTrainer = {
      fit: async () => ({ weights: [{ name: 'w', shape: [1000], data: new Float32Array(1000) }], numExamples: 1, metrics: {} }),
      evaluate: async () => ({ numExamples: 1, metrics: {} }),
    };
    const [, history] = await Promise.all([memorySite(coord, s.id, s.identity, bloated), coord.done]);
    expect(history[0].aggregated).toBe(false);
    expect(history[0].failures).toEqual([expect.objectContaining({ siteId: 'site-a', stage: 'fit', code: 'invalid_reply', reason: expect.stringContaining('oversized') })]);
  });

  it('rejects bad options with a typed error', async () => {
    await expect(startCoordinator({ identity: generateIdentity(), enrollment: new Enrollment(), initialWeights: initial, rounds: -1 })).rejects.toMatchObject({
      code: 'bad_options',
    });
  });
});
