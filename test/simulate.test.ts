/**
 * The embedded default path end to end, in miniature: `fedsfda simulate` starts a coordinator process and
 * one process per site, which handshake over socket.io on loopback, train a U-Net for three FedAvg rounds,
 * and write summary.json. Real processes, real sockets, real encryption; tiny images so it stays fast.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SimulationSummary } from '../simulations/runner/summary.ts';
import { loadSourceStats } from '../site-agent/adapt/source-stats.ts';
import { loadModel } from '../site-agent/model/index.ts';
import { CHILD_PROCESS_BOUND_MS, STAGE_BOUND_MS } from './support/bounds.ts';

const run = promisify(execFile);
const cli = fileURLToPath(new URL('../bin/fedsfda.mjs', import.meta.url));

const scenario = {
  kind: 'federated',
  name: 'test: two tiny sites',
  seed: 3,
  data: { size: 16, numClasses: 3, slicesPerCase: 4, valFraction: 0.34 },
  sites: [
    { id: 'site-x', shift: 'scanner-a', numCases: 3 },
    { id: 'site-y', shift: 'scanner-b', numCases: 3 },
  ],
  model: { baseChannels: 4, depth: 1 },
  training: { rounds: 3, localEpochs: 2, batchSize: 4, lr: 0.01, optimizer: 'adam', loss: 'ce+dice', strategy: 'fedavg', stageTimeoutMs: STAGE_BOUND_MS },
};

describe('fedsfda simulate (multi-process, loopback)', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fedsfda-sim-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('runs every round across separate processes, trains a model clearly better than the untrained one, and writes summary.json', async () => {
    const config = join(dir, 'scenario.json');
    // Base 8 and 5 local epochs: at base 4 or with fewer steps this tiny U-Net stays at predicting background (Dice 0).
    await writeFile(config, JSON.stringify({ ...scenario, model: { baseChannels: 8, depth: 1 }, training: { ...scenario.training, localEpochs: 5 } }));
    const out = join(dir, 'out');
    const { stdout } = await run(process.execPath, [cli, 'simulate', '--config', config, '--out', out], { timeout: CHILD_PROCESS_BOUND_MS });
    expect(stdout).toContain('site-x');
    expect(stdout).toContain('mean Dice over sites');

    const summary = JSON.parse(await readFile(join(out, 'summary.json'), 'utf8')) as SimulationSummary;
    expect(summary.schema).toBe('fedsfda.simulate/v1');
    expect(summary.rounds.map((r) => r.round)).toEqual([1, 2, 3]);
    expect(summary.rounds.every((r) => r.failures === 0)).toBe(true);
    const losses = summary.rounds.map((r) => r.meanTrainLoss as number);
    expect(losses.every(Number.isFinite)).toBe(true);
    expect(losses[2]).toBeLessThan(losses[0]);
    expect(summary.sites.map((s) => s.id)).toEqual(['site-x', 'site-y']);
    // The final model is saved for `fedsfda adapt`. Source statistics are only ever pooled through the masked
    // sum, which needs at least 3 sites (with 2, the sum minus one's own reveals the other's): none here.
    expect(summary.artifacts).toEqual({ model: 'model', sourceStats: null });
    expect(stdout).toContain('secure statistics need at least 3 connected sites');
    expect(summary.nonIid.secure).toBeNull();
    expect(summary.nonIid.inClear?.numSites).toBe(2);
    const model = await loadModel(join(out, 'model'));
    expect(model.config.numClasses).toBe(3);
    model.dispose();
    for (const s of summary.sites) {
      expect(s.dice.perClass).toHaveLength(2);
      expect(s.trainSlices).toBe(8);
      // Training helps: at every site the final global model is clearly better than the untrained one.
      expect(s.dice.mean).toBeGreaterThan((s.untrainedDice.mean as number) + 0.2);
    }
    expect(summary.meanDice).toBeGreaterThan(0.4);
    expect(summary.interrupted).toBe(false);
  });

  it('runs the same path with secure aggregation: the coordinator only sees sums, sites still report Dice', async () => {
    const secure = {
      ...scenario,
      name: 'test: three tiny sites, secure aggregation',
      sites: [...scenario.sites, { id: 'site-z', shift: 'scanner-c', numCases: 3 }],
      training: { ...scenario.training, rounds: 2, secureAggregation: { clip: 8, threshold: 2, maxExamples: 100 } },
    };
    const config = join(dir, 'secure.json');
    await writeFile(config, JSON.stringify(secure));
    const out = join(dir, 'secure-out');
    await run(process.execPath, [cli, 'simulate', '--config', config, '--out', out], { timeout: CHILD_PROCESS_BOUND_MS });
    const summary = JSON.parse(await readFile(join(out, 'summary.json'), 'utf8')) as SimulationSummary;
    expect(summary.rounds.map((r) => [r.round, r.failures])).toEqual([[1, 0], [2, 0]]);
    expect(summary.rounds.every((r) => Number.isFinite(r.meanTrainLoss))).toBe(true);
    const history = JSON.parse(await readFile(join(out, 'history.json'), 'utf8')) as {
      round: number;
      sites: { numExamples: number | null; trainLoss: number | null }[];
      secureAggregation?: { included: string[]; totalExamples: number };
    }[];
    // Round 0 is the sites' evaluation of the untrained model (no fit, nothing aggregated): then the two rounds.
    expect(history.map((r) => r.round)).toEqual([0, 1, 2]);
    expect(history[0].secureAggregation).toBeUndefined();
    for (const r of history.slice(1)) {
      expect(r.secureAggregation?.included.sort()).toEqual(['site-x', 'site-y', 'site-z']);
      expect(r.secureAggregation?.totalExamples).toBe(24);
      // Per-site training numbers are not known to the coordinator under secure aggregation.
      expect(r.sites.every((s) => s.numExamples === null && s.trainLoss === null)).toBe(true);
    }
    for (const s of summary.sites) {
      expect(s.dice.mean).not.toBeNull();
      expect(s.untrainedDice.mean).not.toBeNull();
    }
    // What a new hospital needs: the final model and the source statistics pooled by masked summation.
    expect(summary.artifacts).toEqual({ model: 'model', sourceStats: 'source-stats.json' });
    const stats = await loadSourceStats(join(out, 'source-stats.json'));
    expect(stats.numSites).toBe(3);
    expect(stats.classes.reduce((n, c) => n + c.labelCount, 0)).toBe(3 * 8 * 16 * 16);
    expect(stats.bn['enc1.bn1'].count).toBe(3 * 8 * 16 * 16);
    // The non-IID report from masked sums equals the one computed in the clear from the sites' own histograms.
    const { secure: fromSums, inClear } = summary.nonIid;
    expect(fromSums?.numSites).toBe(3);
    expect(fromSums?.pooledPixels).toEqual(inClear?.pooledPixels);
    expect(fromSums?.pooledPixels.reduce((a, b) => a + b, 0)).toBe(3 * 8 * 16 * 16);
    inClear!.meanSiteFraction.forEach((m, k) => expect(fromSums!.meanSiteFraction[k]).toBeCloseTo(m, 6));
    inClear!.betweenSiteStd.forEach((sd, k) => expect(fromSums!.betweenSiteStd[k]).toBeCloseTo(sd, 3));
    expect(fromSums!.heterogeneity).toBeCloseTo(inClear!.heterogeneity, 6);
    expect(inClear!.heterogeneity).toBeGreaterThan(0);
  });

  it('--compare runs the scenario once per strategy and writes one comparison', async () => {
    const config = join(dir, 'compare.json');
    await writeFile(config, JSON.stringify({ ...scenario, training: { ...scenario.training, rounds: 1, personalizeEpochs: 1 } }));
    const out = join(dir, 'compare-out');
    const { stdout } = await run(process.execPath, [cli, 'simulate', '--config', config, '--out', out, '--compare', 'fedavg,fedprox', '--proximal-mu', '0.1'], { timeout: CHILD_PROCESS_BOUND_MS });
    expect(stdout).toContain('fedprox (mu 0.1)');
    expect(stdout).toContain('fine-tuned mean');
    expect(stdout).not.toMatch(/\x1b\[/); // a pipe gets no colour codes (the comparison table had grey borders)
    const cmp = JSON.parse(await readFile(join(out, 'comparison.json'), 'utf8')) as {
      schema: string;
      heterogeneity: number | null;
      rows: { strategy: string; proximalMu: number; meanDice: number | null; meanPersonalizedDice: number | null; diceBySite: Record<string, number | null> }[];
    };
    expect(cmp.schema).toBe('fedsfda.compare/v1');
    expect(cmp.rows.map((r) => [r.strategy, r.proximalMu])).toEqual([['fedavg', 0], ['fedprox', 0.1]]);
    expect(cmp.heterogeneity).toBeGreaterThanOrEqual(0); // 2 sites: the report computed in the clear
    for (const r of cmp.rows) {
      expect(Object.keys(r.diceBySite)).toEqual(['site-x', 'site-y']);
      // Each run used its own strategy: its summary records the scenario it ran.
      const summary = JSON.parse(await readFile(join(out, r.strategy, 'summary.json'), 'utf8')) as SimulationSummary & { config: { training: { strategy: string; proximalMu: number } } };
      expect(summary.config.training).toMatchObject({ strategy: r.strategy, proximalMu: r.proximalMu });
      expect(r.meanDice).toBe(summary.meanDice);
      // Each site also fine-tuned the final model on its own data (one epoch) and scored it.
      for (const s of summary.sites) expect(s.personalizedDice?.mean).toEqual(expect.any(Number));
      expect(r.meanPersonalizedDice).toBe(summary.meanPersonalizedDice);
    }
    await expect(run(process.execPath, [cli, 'simulate', '--config', config, '--out', out, '--compare', 'fedavg,fedmagic'])).rejects.toThrow(/unknown strategy "fedmagic"/);
  });

  it('refuses a scenario with a typed error naming the bad field, before starting any process', async () => {
    const config = join(dir, 'bad.json');
    await writeFile(config, JSON.stringify({ ...scenario, training: { ...scenario.training, rounds: 0 } }));
    const err = await run(process.execPath, [cli, 'simulate', '--config', config, '--out', join(dir, 'bad-out')]).catch((e: { code: number; stderr: string }) => e);
    expect((err as { code: number }).code).toBe(1);
    expect((err as { stderr: string }).stderr).toContain('training.rounds');
  });
});
