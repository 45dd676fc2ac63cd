/**
 * Differential privacy through `fedsfda simulate`, end to end: a DP scenario reports epsilon in summary.json and
 * privacy.json (central and distributed); a scenario over its budget refuses to start (non-zero exit, typed error)
 * before any process runs.
 */
import { execFile } from 'node:child_process';
import { access, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sampledGaussianEpsilon } from '../protocol/privacy/index.ts';
import type { SimulationSummary } from '../simulations/runner/summary.ts';

const run = promisify(execFile);
const cli = fileURLToPath(new URL('../bin/fedsfda.mjs', import.meta.url));

const scenario = (dp: unknown, rounds = 2) => ({
  kind: 'federated',
  name: 'test: DP-FedAvg, three tiny sites',
  seed: 3,
  data: { size: 16, numClasses: 3, slicesPerCase: 4, valFraction: 0.34 },
  sites: [
    { id: 'site-x', shift: 'scanner-a', numCases: 3 },
    { id: 'site-y', shift: 'scanner-b', numCases: 3 },
    { id: 'site-z', shift: 'scanner-c', numCases: 3 },
  ],
  model: { baseChannels: 4, depth: 1 },
  training: { rounds, localEpochs: 1, batchSize: 4, lr: 0.01, optimizer: 'adam', loss: 'ce+dice', strategy: 'fedavg', stageTimeoutMs: 300000, differentialPrivacy: dp },
});

describe('fedsfda simulate with differential privacy', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fedsfda-dp-sim-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('refuses a scenario over its budget before round 1 (exit 1, budget-exceeded, no process started)', async () => {
    const config = join(dir, 'over.json');
    await writeFile(config, JSON.stringify(scenario({ noiseMultiplier: 1, clip: 1, maxEpsilon: 3 }, 50)));
    const out = join(dir, 'over-out');
    const err = (await run(process.execPath, [cli, 'simulate', '--config', config, '--out', out], { timeout: 580_000 }).catch((e: unknown) => e)) as { code: number; stderr: string };
    expect(err.code).toBe(1);
    expect(err.stderr).toMatch(/\[budget-exceeded\] 50 rounds of DP-FedAvg .* over the budget of 3/);
    await expect(access(join(out, 'keys'))).rejects.toThrow(); // nothing was set up
  }, 600_000);

  it('runs DP-FedAvg across processes and reports epsilon in summary.json and privacy.json', async () => {
    const config = join(dir, 'dp.json');
    await writeFile(config, JSON.stringify(scenario({ noiseMultiplier: 1.5, clip: 0.5, delta: 1e-5, maxEpsilon: 20 })));
    const out = join(dir, 'dp-out');
    const { stdout } = await run(process.execPath, [cli, 'simulate', '--config', config, '--out', out], { timeout: 580_000 });
    const want = sampledGaussianEpsilon({ samplingRate: 1, noiseMultiplier: 1.5, steps: 2, delta: 1e-5 }).epsilon;
    expect(stdout).toContain(`differential privacy (central): epsilon ${want.toFixed(3)}`);
    const summary = JSON.parse(await readFile(join(out, 'summary.json'), 'utf8')) as SimulationSummary;
    expect(summary.privacy).toMatchObject({ mode: 'central', roundsAccounted: 2, delta: 1e-5, noiseMultiplier: 1.5, samplingRate: 1, clip: 0.5, maxEpsilon: 20 });
    expect(summary.privacy!.epsilon).toBeCloseTo(want, 10);
    expect(summary.rounds.every((r) => r.failures === 0)).toBe(true);
    expect(JSON.parse(await readFile(join(out, 'privacy.json'), 'utf8')).epsilon).toBeCloseTo(want, 10);
  }, 600_000);

  it('with secure aggregation the sites add the noise, and each site accounts the same epsilon on its own', async () => {
    const config = join(dir, 'ddp.json');
    const s = scenario({ noiseMultiplier: 1.5, clip: 0.5, delta: 1e-5 });
    await writeFile(config, JSON.stringify({ ...s, training: { ...s.training, secureAggregation: { clip: 8, maxExamples: 1000 } } }));
    const out = join(dir, 'ddp-out');
    const { stdout } = await run(process.execPath, [cli, 'simulate', '--config', config, '--out', out], { timeout: 580_000 });
    const summary = JSON.parse(await readFile(join(out, 'summary.json'), 'utf8')) as SimulationSummary;
    expect(summary.privacy).toMatchObject({ mode: 'distributed', roundsAccounted: 2, noiseSource: 'crypto' });
    const eps = summary.privacy!.epsilon.toFixed(3);
    expect(stdout).toContain(`differential privacy (distributed): epsilon ${eps}`);
    for (const id of ['site-x', 'site-y', 'site-z']) expect(stdout).toMatch(new RegExp(`${id}: round 2: update norm [0-9.]+ clipped to 0.5, .* own epsilon so far ${eps}`));
    // The after-training source statistics of the noised model are pooled too (their sums of squares exceeded the
    // old fixed clip of 1e4 on every site: [secagg:bad-input]); the scaled statistics round sizes their range.
    const stats = JSON.parse(await readFile(join(out, 'source-stats.json'), 'utf8')) as { numSites: number; bn: Record<string, { count: number; sumSq: number[] }> };
    expect(stats.numSites).toBe(3);
    const layers = Object.values(stats.bn);
    expect(layers.length).toBeGreaterThan(0);
    for (const l of layers) expect(l.count).toBeGreaterThan(0);
  }, 600_000);
});
