/**
 * Nothing fails silently (issue 10): the JSON log of a real coordinator process names every failure class once, with
 * an ISO timestamp, a level and a typed code — an unenrolled site, a malformed handshake, connections refused by the
 * per-address cap, a site that times out, a site that dies mid-round, a checkpoint that cannot be written (plain
 * run), and a site dropping out of a secure round that then aborts (secure run). A strategy failure cannot be
 * provoked by a well-formed protocol run, so it is checked with the real round runner and the real JSON logger.
 */
import { Writable } from 'node:stream';
import { connect as tcpConnect, type Socket } from 'node:net';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { io } from 'socket.io-client';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startCoordinator, FedAvg, type AggregatedFit, type FitResult } from '../../coordinator/index.ts';
import { createLogger } from '../../protocol/common/index.ts';
import { Enrollment } from '../../protocol/enrollment.ts';
import { generateIdentity, saveIdentity } from '../../protocol/identity.ts';
import type { WeightSet } from '../../protocol/named-tensor.ts';
import { createMemoryTransportPair } from '../../protocol/memory-transport.ts';
import { runSite } from '../../site-agent/client/index.ts';
import { coordinatorArgs, coordinatorUrl, makeConsortium, startCoordinatorProcess, startToySite, stopAll, type Consortium, type LogLine, type Proc } from '../support/process-harness.ts';

const procs: Proc[] = [];
let dir = '';
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'fedsfda-logs-'));
});
afterEach(async () => {
  await stopAll(procs.splice(0));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

/** The lines with `code`, each checked for an ISO time and the expected level (40 warn, 50 error). */
function withCode(logs: LogLine[], code: string, level: number): LogLine[] {
  const lines = logs.filter((l) => l.code === code);
  for (const l of lines) {
    expect(l.time, `${code} has an ISO timestamp`).toMatch(ISO);
    expect(l.level, `${code} is logged at level ${level}`).toBe(level);
  }
  return lines;
}

describe('failure logs of a real coordinator process (--log-format json)', () => {
  it('plain run: refused, malformed, capped, timed-out, dead sites and a failed checkpoint, each once with its code', async () => {
    await mkdir(join(dir, 'plain'));
    const c = await makeConsortium(join(dir, 'plain'), 3);
    const ckpt = join(dir, 'plain', 'ckpt');
    // A non-empty directory where round 1's weights must go: that checkpoint cannot be written.
    await mkdir(join(ckpt, 'weights-r1.fsws'), { recursive: true });
    await writeFile(join(ckpt, 'weights-r1.fsws', 'occupied'), '');
    const config = join(dir, 'plain', 'config.json');
    await writeFile(
      config,
      JSON.stringify({ rounds: 3, minSites: 3, port: 0, checkpointDir: ckpt, minAggregatedFraction: 0, timeouts: { fitMs: 6000, evaluateMs: 6000 }, limits: { maxUnauthenticatedPerAddress: 4 } }),
    );
    const coord = startCoordinatorProcess(coordinatorArgs(c, config));
    procs.push(coord);
    const url = await coordinatorUrl(coord);
    const port = Number(new URL(url).port);

    // Six half-open connections against a cap of four unauthenticated per address: two are refused.
    const sockets: Socket[] = [];
    for (let i = 0; i < 6; i++) {
      const s = tcpConnect(port, '127.0.0.1');
      s.on('error', () => {});
      s.write('GET /health HTTP/1.1\r\nHost: x\r\n');
      sockets.push(s);
    }
    await coord.waitFor(/address_cap/);
    for (const s of sockets) s.destroy();
    // A malformed hello over a real socket.io connection.
    const raw = io(url, { transports: ['websocket'], reconnection: false, forceNew: true });
    await new Promise<void>((resolve) => raw.once('connect', () => resolve()));
    raw.emit('hello', { siteId: 'x', nonsense: true });
    await coord.waitFor(/handshake rejected/);
    raw.close();
    // A site that is not on the allow-list.
    const strangerFile = join(dir, 'plain', 'stranger.json');
    await saveIdentity(strangerFile, generateIdentity());
    const stranger = startToySite({ url, coordinatorKey: c.coordinatorKey, siteId: 'stranger', identityFile: strangerFile, seed: 9 });
    procs.push(stranger);
    expect(await stranger.exited).toBe(1);

    // The run: site-2 is too slow in round 2, site-3 dies in round 3.
    const base = { url, coordinatorKey: c.coordinatorKey, initialDelayMs: 100, maxDelayMs: 500 };
    const sites = [
      startToySite({ ...base, siteId: 'site-1', identityFile: c.sites[0].identityFile, seed: 1 }),
      startToySite({ ...base, siteId: 'site-2', identityFile: c.sites[1].identityFile, seed: 2, slowInRound: 2, slowMs: 9000 }),
      startToySite({ ...base, siteId: 'site-3', identityFile: c.sites[2].identityFile, seed: 3, dieInRound: 3 }),
    ];
    procs.push(...sites);
    await coord.exited;

    const logs = coord.logs;
    expect(withCode(logs, 'address_cap', 40).length).toBeGreaterThanOrEqual(2);
    expect(withCode(logs, 'malformed', 40)).toHaveLength(1);
    expect(withCode(logs, 'not_enrolled', 40)).toEqual([expect.objectContaining({ siteId: 'stranger' })]);
    expect(withCode(logs, 'checkpoint_failed', 50)).toEqual([expect.objectContaining({ round: 1 })]);
    expect(withCode(logs, 'fit_timeout', 40)).toEqual([expect.objectContaining({ round: 2, siteId: 'site-2' })]);
    expect(withCode(logs, 'fit_disconnected', 40)).toEqual([expect.objectContaining({ round: 3, siteId: 'site-3' })]);
    expect(withCode(logs, 'site_disconnected', 30).some((l) => l.siteId === 'site-3')).toBe(true);
  }, 600_000);

  it('secure run: the dropouts and the aborted round, each once with its code', async () => {
    const c = await makeConsortium(await mkdtemp(join(dir, 'secure-')), 3);
    const config = join(c.dir, 'config.json');
    await writeFile(config, JSON.stringify({ rounds: 1, minSites: 3, port: 0, minAggregatedFraction: 0, secureAggregation: { clip: 8, maxExamples: 100 } }));
    const coord = startCoordinatorProcess(coordinatorArgs(c, config));
    procs.push(coord);
    const url = await coordinatorUrl(coord);
    const sites = c.sites.map((s, i) => startToySite({ url, coordinatorKey: c.coordinatorKey, siteId: s.id, identityFile: s.identityFile, seed: i, failFit: i > 0 }));
    procs.push(...sites);
    expect(await coord.exited).toBe(1); // the only round aborted: the run did not train
    const dropouts = withCode(coord.logs, 'secagg_dropout', 40);
    expect(dropouts.map((l) => l.siteId).sort()).toEqual(['site-2', 'site-3']);
    expect(withCode(coord.logs, 'secagg_aborted', 40)).toEqual([expect.objectContaining({ secaggCode: 'below-threshold' })]);
    expect(withCode(coord.logs, 'run_failed', 50)).toHaveLength(1);
  }, 600_000);
});

describe('a strategy failure in the real round runner', () => {
  it('is logged once as strategy_failed (error) and recorded in the round', async () => {
    const lines: LogLine[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        for (const l of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(l) as LogLine);
        done();
      },
    });
    class Broken extends FedAvg {
      override aggregateFit(_r: number, _res: readonly FitResult[]): AggregatedFit | null {
        throw new Error('aggregation exploded');
      }
    }
    const site = generateIdentity();
    const enrollment = new Enrollment().allow('site-a', site.publicKey);
    const initial: WeightSet = [{ name: 'w', shape: [1], data: Float32Array.of(1) }];
    const coord = await startCoordinator({ identity: generateIdentity(), enrollment, initialWeights: initial, rounds: 1, strategy: new Broken(), logger: createLogger({ format: 'json', destination: sink }) });
    const trainer = { fit: async (g: WeightSet) => ({ weights: g, numExamples: 1, metrics: {} }), evaluate: async () => ({ numExamples: 1, metrics: {} }) };
    const connect = async () => {
      const pair = createMemoryTransportPair('site-a');
      coord.accept(pair.coordinator);
      return pair.site;
    };
    const [history] = await Promise.all([coord.done, runSite({ url: 'memory', identity: site, coordinatorPublicKey: coord.publicKey, siteId: 'site-a', trainer, connect })]);
    await coord.close();
    expect(history[0]).toMatchObject({ aggregated: false, strategyError: 'aggregation exploded' });
    expect(withCode(lines, 'strategy_failed', 50)).toEqual([expect.objectContaining({ round: 1, err: 'aggregation exploded' })]);
  }, 120_000);
});
