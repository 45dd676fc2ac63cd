/**
 * Differentially private shared statistics through `fedsfda simulate`, end to end: the pooled source statistics and
 * the class histogram are released with per-case bounded contributions and Gaussian noise (central: the coordinator
 * adds it; distributed: the sites add discrete Gaussian shares under secure aggregation), each file says what
 * guarantee it carries, and privacy-ledger.json / summary.json compose the statistics with the training in RDP.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile, access } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { composeRunPrivacy, sampledGaussianEpsilon, type RunPrivacyReport } from '../protocol/privacy/index.ts';
import { fitSourceGmm, parseSourceStats } from '../site-agent/adapt/index.ts';
import { sourceStatsGuarantee } from '../site-agent/adapt/adapt-command.ts';
import type { SimulationSummary } from '../simulations/runner/summary.ts';

const run = promisify(execFile);
const cli = fileURLToPath(new URL('../bin/fedsfda.mjs', import.meta.url));

const scenario = (training: Record<string, unknown>, statisticsDp: unknown) => ({
  kind: 'federated',
  name: 'test: DP statistics, three tiny sites',
  seed: 5,
  data: { size: 16, numClasses: 3, slicesPerCase: 4, valFraction: 0.34 },
  sites: [
    { id: 'site-x', shift: 'scanner-a', numCases: 3 },
    { id: 'site-y', shift: 'scanner-b', numCases: 3 },
    { id: 'site-z', shift: 'scanner-c', numCases: 3 },
  ],
  model: { baseChannels: 4, depth: 1 },
  training: { rounds: 2, localEpochs: 1, batchSize: 4, lr: 0.01, optimizer: 'adam', loss: 'ce+dice', strategy: 'fedavg', stageTimeoutMs: 300000, ...training },
  statistics: { differentialPrivacy: statisticsDp },
});

describe('fedsfda simulate with differentially private statistics', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fedsfda-dp-stats-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('central: the coordinator noises both statistics; the ledger holds two Gaussian releases at z', async () => {
    const config = join(dir, 'central.json');
    await writeFile(config, JSON.stringify(scenario({}, { noiseMultiplier: 2, delta: 1e-5, maxUnitsPerSite: 8, seed: 11 })));
    const out = join(dir, 'central-out');
    await run(process.execPath, [cli, 'simulate', '--config', config, '--out', out], { timeout: 580_000 });
    const want = sampledGaussianEpsilon({ samplingRate: 1, noiseMultiplier: 2, steps: 2, delta: 1e-5 }).epsilon;
    const ledger = JSON.parse(await readFile(join(out, 'privacy-ledger.json'), 'utf8')) as RunPrivacyReport;
    expect(ledger.training).toBeNull();
    expect(ledger.statistics!.releases).toEqual(['stats/source-stats', 'stats/class-histogram']);
    expect(ledger.epsilon).toBeCloseTo(want, 9);
    await expect(access(join(out, 'privacy.json'))).rejects.toThrow(); // training is not DP
    const summary = JSON.parse(await readFile(join(out, 'summary.json'), 'utf8')) as SimulationSummary;
    expect(summary.privacyLedger!.epsilon).toBeCloseTo(want, 9);
    const raw = JSON.parse(await readFile(join(out, 'source-stats.json'), 'utf8')) as unknown;
    const stats = parseSourceStats(raw); // the schema accepts the privacy block
    expect(stats.privacy).toMatchObject({ mechanism: 'gaussian', unit: 'case', delta: 1e-5, noiseMultiplier: 2, maxUnitsPerSite: 8, unitPixels: 16 * 16 * 4 });
    expect(stats.privacy!.epsilon).toBeCloseTo(sampledGaussianEpsilon({ samplingRate: 1, noiseMultiplier: 2, steps: 1, delta: 1e-5 }).epsilon, 9);
    expect(stats.numSites).toBe(3);
    expect(sourceStatsGuarantee(stats)).toMatch(/^source statistics: \([0-9.]+, 0\.00001\)-DP per case \(gaussian noise, multiplier 2\.000\)/);
    expect(() => fitSourceGmm(stats)).not.toThrow(); // post-processed: every covariance factorises
    const hist = JSON.parse(await readFile(join(out, 'class-histogram.json'), 'utf8')) as { privacy: { runEpsilon: number }; numSites: number };
    expect(hist.numSites).toBe(3);
    expect(hist.privacy.runEpsilon).toBeCloseTo(want, 9);
  }, 600_000);

  it('distributed under secure aggregation, composed with DP-FedAvg: statistics at their target, total below the sum', async () => {
    const config = join(dir, 'distributed.json');
    const training = { secureAggregation: { clip: 8, maxExamples: 1000 }, differentialPrivacy: { noiseMultiplier: 1.5, clip: 0.5, delta: 1e-5 } };
    await writeFile(config, JSON.stringify(scenario(training, { targetEpsilon: 4, delta: 1e-5, maxUnitsPerSite: 8 })));
    const out = join(dir, 'distributed-out');
    await run(process.execPath, [cli, 'simulate', '--config', config, '--out', out], { timeout: 580_000 });
    const summary = JSON.parse(await readFile(join(out, 'summary.json'), 'utf8')) as SimulationSummary;
    const ledger = summary.privacyLedger!;
    expect(ledger.training!.epsilon).toBeCloseTo(summary.privacy!.epsilon, 9);
    // Each site's share is calibrated to the integer sensitivity: the sum of 3 shares is the Gaussian at z (tau ~ 0).
    expect(ledger.statistics!.epsilon).toBeLessThanOrEqual(4 * 1.001);
    expect(ledger.statistics!.epsilon).toBeGreaterThan(3.9);
    expect(ledger.epsilon).toBeGreaterThan(Math.max(ledger.training!.epsilon, ledger.statistics!.epsilon));
    expect(ledger.epsilon).toBeLessThan(ledger.training!.epsilon + ledger.statistics!.epsilon);
    const stats = parseSourceStats(JSON.parse(await readFile(join(out, 'source-stats.json'), 'utf8')));
    expect(stats.privacy).toMatchObject({ mechanism: 'distributed-discrete-gaussian', unit: 'case' });
    expect(stats.privacy!.runEpsilon).toBeGreaterThan(ledger.training!.epsilon);
    expect(() => fitSourceGmm(stats)).not.toThrow();
  }, 600_000);

  it('refuses to start a run whose training and statistics would exceed maxTotalEpsilon (exit 1, nothing set up)', async () => {
    const config = join(dir, 'over.json');
    await writeFile(config, JSON.stringify(scenario({ differentialPrivacy: { noiseMultiplier: 2, clip: 0.5 } }, { noiseMultiplier: 0.8, delta: 1e-5, maxTotalEpsilon: 5 })));
    const out = join(dir, 'over-out');
    const err = (await run(process.execPath, [cli, 'simulate', '--config', config, '--out', out], { timeout: 580_000 }).catch((e: unknown) => e)) as { code: number; stderr: string };
    expect(err.code).toBe(1);
    expect(err.stderr).toMatch(/\[budget-exceeded\] training \(epsilon [0-9.]+\) and 2 statistics release\(s\) at noise multiplier 0\.800 spend epsilon [0-9.]+ > maxTotalEpsilon 5/);
    await expect(access(join(out, 'keys'))).rejects.toThrow();
  }, 600_000);
});
