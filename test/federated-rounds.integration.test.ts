/**
 * Real socket.io coordinator on 127.0.0.1:0 with in-process sites: two FedAvg rounds checked against a
 * hand-computed weighted mean, REST endpoints, refusal of an unenrolled site, and a hostile site that does
 * not stop the round for the others. Barriers are events; no sleeps; everything closed in afterEach.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { io as ioClient } from 'socket.io-client';
import { startCoordinator, type CoordinatorHandle } from '../coordinator/start-coordinator.ts';
import { FedAvg } from '../coordinator/strategies/fedavg.ts';
import { Enrollment } from '../protocol/enrollment.ts';
import { generateIdentity, type Identity } from '../protocol/identity.ts';
import type { WeightSet } from '../protocol/named-tensor.ts';
import type { SiteTransport } from '../protocol/memory-transport.ts';
import { connectSocketIo, runSite } from '../site-agent/client/index.ts';
import { SiteError } from '../site-agent/client/site-session.ts';
import type { LocalTrainer } from '../site-agent/client/local-trainer.ts';
import { LeastSquaresTrainer, leastSquaresSteps, linearWeights, makeLinearData, type LinearData } from './support/least-squares-trainer.ts';
import { GENEROUS_TIMEOUTS } from './support/bounds.ts';

const D = 3;
const LR = 0.1;
const EPOCHS = 2;
const STEPS = 5;

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

function siteFixture(id: string, seed: number, n: number): { id: string; identity: Identity; data: LinearData; trainer: LeastSquaresTrainer } {
  const data = makeLinearData(seed, n, D, [1, -2, 0.5], 0.3);
  return { id, identity: generateIdentity(), data, trainer: new LeastSquaresTrainer(data, STEPS) };
}

/** FedAvg by hand: each site runs the same least-squares steps; the mean is weighted by n_k (McMahan et al. 2017). */
function handFedAvg(global: { w: Float32Array; b: number }, sites: LinearData[]): { w: Float32Array; b: number } {
  const outs = sites.map((d) => leastSquaresSteps(d, global.w, global.b, LR, EPOCHS * STEPS));
  const total = sites.reduce((s, d) => s + d.n, 0);
  const w = new Float32Array(D);
  for (let j = 0; j < D; j++) w[j] = outs.reduce((s, o, k) => s + (sites[k].n / total) * o.w[j], 0);
  const b = Math.fround(outs.reduce((s, o, k) => s + (sites[k].n / total) * o.b, 0));
  return { w, b };
}

async function coordinator(enrollment: Enrollment, initial: WeightSet, extra: Partial<Parameters<typeof startCoordinator>[0]> = {}): Promise<CoordinatorHandle & { identity: Identity }> {
  const identity = generateIdentity();
  const handle = await startCoordinator({
    identity,
    enrollment,
    initialWeights: initial,
    rounds: 2,
    minSites: 2,
    strategy: new FedAvg({ localEpochs: EPOCHS, lr: LR }),
    port: 0,
    timeouts: GENEROUS_TIMEOUTS,
    ...extra,
  });
  cleanups.push(() => handle.close());
  return Object.assign(handle, { identity });
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

describe('federated rounds over socket.io', () => {
  it('two sites complete two FedAvg rounds; the global model equals the hand-computed weighted mean', async () => {
    const a = siteFixture('hospital-a', 11, 40);
    const b = siteFixture('hospital-b', 22, 10);
    const enrollment = new Enrollment().allow(a.id, a.identity.publicKey).allow(b.id, b.identity.publicKey);
    const w0 = new Float32Array([0.1, 0.2, -0.1]);
    const coord = await coordinator(enrollment, linearWeights(w0, 0));
    const completed: number[] = [];
    coord.events.on('roundCompleted', (r) => completed.push(r.round));

    const run = (s: typeof a) => runSite({ url: coord.url, identity: s.identity, coordinatorPublicKey: coord.publicKey, siteId: s.id, trainer: s.trainer });
    const [ra, rb, history] = await Promise.all([run(a), run(b), coord.done]);

    // Hand-computed FedAvg over the same deterministic least-squares steps.
    const r1 = handFedAvg({ w: w0, b: 0 }, [a.data, b.data]);
    const r2 = handFedAvg(r1, [a.data, b.data]);
    const final = coord.weights();
    const w = final.find((t) => t.name === 'linear.w')!.data;
    const bias = final.find((t) => t.name === 'linear.b')!.data[0];
    for (let j = 0; j < D; j++) expect(w[j]).toBeCloseTo(r2.w[j], 5);
    expect(bias).toBeCloseTo(r2.b, 5);
    // Real training happened: the model moved towards w_true and the loss fell between rounds.
    expect(Math.abs(w[1] - -2)).toBeLessThan(Math.abs(w0[1] - -2));

    expect(completed).toEqual([1, 2]);
    expect(history).toHaveLength(2);
    for (const rec of history) {
      expect(rec.aggregated).toBe(true);
      expect(rec.failures).toEqual([]);
      expect(rec.sites.map((s) => s.siteId)).toEqual(['hospital-a', 'hospital-b']);
      expect(rec.sites.map((s) => s.numExamples)).toEqual([40, 10]);
      const [sa, sb] = rec.sites;
      expect(rec.meanTrainLoss).toBeCloseTo((40 * sa.trainLoss! + 10 * sb.trainLoss!) / 50, 10);
      expect(sa.evalMetrics?.mse).toBeGreaterThan(0);
      expect(sa.evalMetrics).not.toHaveProperty('nanMetric'); // non-finite metrics are dropped, not fatal
    }
    expect(history[1].meanTrainLoss!).toBeLessThan(history[0].meanTrainLoss!);
    expect(ra.rounds).toEqual([1, 2]);
    expect(rb.rounds).toEqual([1, 2]);
    expect(ra.lastRound).toBe(2);
    expect(a.trainer.fitCalls.map((c) => c.round)).toEqual([1, 2]);
    expect(a.trainer.fitCalls[0]).toMatchObject({ localEpochs: EPOCHS, lr: LR });

    // REST surface.
    const health = await (await fetch(`${coord.url}/health`)).json();
    expect(health).toEqual({ ok: true, status: 'up' });
    const status = await (await fetch(`${coord.url}/status`)).json();
    expect(status).toMatchObject({ ok: true, stage: 'finished', round: 2, rounds: 2, strategy: 'fedavg' });
    const rounds = await (await fetch(`${coord.url}/rounds`)).json();
    expect(rounds.rounds).toHaveLength(2);
    expect(rounds.rounds[0].meanTrainLoss).toBeCloseTo(history[0].meanTrainLoss!, 10);
    const metrics = await (await fetch(`${coord.url}/metrics`)).text();
    expect(metrics).toContain('# TYPE fedsfda_rounds_completed_total counter');
    expect(metrics).toMatch(/fedsfda_rounds_completed_total 2\n/);
    expect(metrics).toMatch(/fedsfda_handshakes_total\{outcome="ok"\} 2\n/);
    // The model went out sealed: at least 2 sites x 2 rounds x the encoded model's size were sent.
    const sent = Number(/fedsfda_bytes_sent_total (\d+)/.exec(metrics)?.[1]);
    expect(sent).toBeGreaterThan(2 * 2 * (9 + 2 + 8 + 1 + 1 + 4 + 12));
    const dashboard = await fetch(`${coord.url}/`);
    expect(dashboard.headers.get('content-type')).toMatch(/text\/html/);
    expect(await dashboard.text()).toContain("api('rounds')");
    const missing = await fetch(`${coord.url}/nope`);
    expect(missing.status).toBe(404);
  });

  it('refuses an unenrolled site and survives a hostile one while the enrolled sites keep training', async () => {
    const a = siteFixture('hospital-a', 11, 30);
    const b = siteFixture('hospital-b', 22, 20);
    const evil = siteFixture('hospital-evil', 33, 1000);
    const stranger = siteFixture('hospital-x', 44, 10);
    const enrollment = new Enrollment().allow(a.id, a.identity.publicKey).allow(b.id, b.identity.publicKey).allow(evil.id, evil.identity.publicKey);
    const w0 = new Float32Array([0, 0, 0]);
    const coord = await coordinator(enrollment, linearWeights(w0, 0), { autoStart: false });

    // The enrolled-but-hostile site returns an update of the wrong shape with a huge example count.
    const hostileTrainer: LocalTrainer = {
      fit: async (_g, _c) => ({ weights: [{ name: 'linear.w', shape: [2], data: new Float32Array([1e9, 1e9]) }], numExamples: 1_000_000, metrics: { trainLoss: 0 } }),
      evaluate: async () => ({ numExamples: 1, metrics: {} }),
    };
    const run = (s: typeof a, trainer: LocalTrainer = s.trainer, connect?: () => Promise<SiteTransport>) =>
      runSite({ url: coord.url, identity: s.identity, coordinatorPublicKey: coord.publicKey, siteId: s.id, trainer, reconnect: { maxAttempts: 1 }, ...(connect ? { connect } : {}) });
    // The hostile site also injects forged envelopes into its authenticated session, right after its `ready`.
    const injectingConnect = async (): Promise<SiteTransport> => {
      const t = await connectSocketIo(coord.url);
      const send = t.send.bind(t);
      let injected = false;
      t.send = ((event: 'hello' | 'sealed', payload: never) => {
        send(event, payload);
        if (event === 'sealed' && !injected) {
          injected = true;
          for (let i = 0; i < 3; i++) {
            const forged = new Uint8Array(10 + 100);
            forged[0] = 1; // envelope version
            forged[1] = 1; // site -> coordinator direction
            new DataView(forged.buffer).setBigUint64(2, BigInt(1000 + i), false);
            send('sealed', forged as never);
          }
        }
      }) as typeof t.send;
      return t;
    };

    const pa = run(a);
    const pb = run(b);
    const pe = run(evil, hostileTrainer, injectingConnect);
    // An unknown key is refused and told why.
    const refused = await run(stranger).then(
      () => null,
      (e: unknown) => e,
    );
    expect(refused).toBeInstanceOf(SiteError);
    expect((refused as SiteError).code).toBe('refused');
    expect((refused as SiteError).replyCode).toBe('not_enrolled');
    // A site presenting an enrolled id with another key is refused too.
    const impostor = await runSite({ url: coord.url, identity: generateIdentity(), coordinatorPublicKey: coord.publicKey, siteId: a.id, trainer: a.trainer }).catch((e: SiteError) => e);
    expect((impostor as SiteError).replyCode).toBe('wrong_key');

    // Raw garbage on the socket: junk hello, sealed bytes before any handshake.
    const raw = ioClient(coord.url, { transports: ['websocket'], reconnection: false, forceNew: true });
    cleanups.push(() => void raw.close());
    const rawRefused = new Promise<unknown>((resolve) => raw.on('refused', resolve));
    raw.emit('sealed', new Uint8Array([1, 2, 3, 4]));
    raw.emit('hello', { v: 1, type: 'hello', siteId: '../../etc', identityKey: 'zz' });
    expect(await rawRefused).toMatchObject({ type: 'refused', error: { code: 'bad_request' } });

    await waitForSites(coord, 3);
    const history = await coord.start();
    await Promise.all([pa, pb, pe]);

    const r1 = handFedAvg({ w: w0, b: 0 }, [a.data, b.data]);
    const r2 = handFedAvg(r1, [a.data, b.data]);
    const w = coord.weights().find((t) => t.name === 'linear.w')!.data;
    for (let j = 0; j < D; j++) expect(w[j]).toBeCloseTo(r2.w[j], 5);
    for (const rec of history) {
      expect(rec.aggregated).toBe(true);
      expect(rec.failures).toEqual([expect.objectContaining({ siteId: 'hospital-evil', stage: 'fit', code: 'invalid_reply' })]);
    }
    const metrics = await (await fetch(`${coord.url}/metrics`)).text();
    expect(metrics).toMatch(/fedsfda_site_failures_total\{code="invalid_reply",stage="fit"\} 2\n/);
    expect(metrics).toMatch(/fedsfda_handshakes_total\{outcome="refused"\} 2\n/);
    expect(metrics).toMatch(/fedsfda_rejected_envelopes_total\{code="handshake_required"\} 1\n/);
    expect(metrics).toMatch(/fedsfda_rejected_envelopes_total\{code="malformed"\} 1\n/);
    expect(metrics).toMatch(/fedsfda_rejected_envelopes_total\{code="tampered"\} 3\n/);
  });
});
