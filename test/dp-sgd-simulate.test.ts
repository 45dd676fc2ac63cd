/**
 * Sample-level DP-SGD through `fedsfda simulate`, end to end (real processes): every site trains the GroupNorm
 * U-Net with per-slice clipping and noise, accounts its own epsilon over all its local steps, and the summary
 * carries what each site spent (equal to the accountant's value for its steps); a scenario asking for DP-SGD with
 * batch norm is refused by name; a site whose plan is over its budget refuses before round 1 and the run exits 1.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dpSgdSampling, sampledGaussianEpsilon } from '../protocol/privacy/index.ts';
import type { SimulationSummary } from '../simulations/runner/summary.ts';

const run = promisify(execFile);
const cli = fileURLToPath(new URL('../bin/fedsfda.mjs', import.meta.url));

const scenario = (dpSgd: unknown, normalization = 'group') => ({
  kind: 'federated',
  name: 'test: DP-SGD, three tiny sites',
  seed: 5,
  data: { size: 16, numClasses: 3, slicesPerCase: 4, valFraction: 0.34 },
  sites: [
    { id: 'site-x', shift: 'scanner-a', numCases: 3 },
    { id: 'site-y', shift: 'scanner-b', numCases: 3 },
    { id: 'site-z', shift: 'scanner-c', numCases: 3 },
  ],
  model: { baseChannels: 4, depth: 1, normalization },
  training: { rounds: 2, localEpochs: 1, batchSize: 4, lr: 0.01, optimizer: 'adam', loss: 'ce+dice', strategy: 'fedavg', stageTimeoutMs: 300000, dpSgd },
});

describe('fedsfda simulate with sample-level DP-SGD', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fedsfda-dpsgd-sim-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('refuses DP-SGD with the batch-norm U-Net, naming the field', async () => {
    const config = join(dir, 'bn.json');
    await writeFile(config, JSON.stringify(scenario({ clip: 1, noiseMultiplier: 1 }, 'batch')));
    const err = (await run(process.execPath, [cli, 'simulate', '--config', config, '--out', join(dir, 'bn-out')], { timeout: 280_000 }).catch((e: unknown) => e)) as { code: number; stderr: string };
    expect(err.code).not.toBe(0);
    expect(err.stderr).toMatch(/model\.normalization/);
    expect(err.stderr).toMatch(/training\.dpSgd needs model\.normalization "group"/);
  }, 300_000);

  it("trains every site with DP-SGD and reports each site's own epsilon, as the accountant computes it", async () => {
    const config = join(dir, 'sgd.json');
    await writeFile(config, JSON.stringify(scenario({ clip: 1, noiseMultiplier: 1.2, delta: 1e-5, seed: 11 })));
    const out = join(dir, 'sgd-out');
    const { stdout } = await run(process.execPath, [cli, 'simulate', '--config', config, '--out', out], { timeout: 580_000 });
    const summary = JSON.parse(await readFile(join(out, 'summary.json'), 'utf8')) as SimulationSummary;
    expect(summary.rounds.map((r) => r.failures)).toEqual([0, 0]);
    for (const site of summary.sites) {
      const { stepsPerEpoch, samplingRate } = dpSgdSampling(site.trainSlices!, 4);
      const steps = 2 * stepsPerEpoch;
      expect(site.dpSgd).toMatchObject({ steps, noiseMultiplier: 1.2, delta: 1e-5 });
      expect(site.dpSgd!.epsilon).toBeCloseTo(sampledGaussianEpsilon({ samplingRate, noiseMultiplier: 1.2, steps, delta: 1e-5 }).epsilon, 9);
      expect(stdout).toMatch(new RegExp(`${site.id}: round 2: DP-SGD ${steps} noised steps so far .* own epsilon so far ${site.dpSgd!.epsilon.toFixed(3)}`));
    }
  }, 600_000);

  it('a site whose DP-SGD plan is over its budget refuses before round 1, and the run exits 1', async () => {
    const config = join(dir, 'over.json');
    await writeFile(config, JSON.stringify(scenario({ clip: 1, noiseMultiplier: 0.5, maxEpsilon: 0.5 })));
    const err = (await run(process.execPath, [cli, 'simulate', '--config', config, '--out', join(dir, 'over-out')], { timeout: 580_000 }).catch((e: unknown) => e)) as { code: number; stdout: string; stderr: string };
    expect(err.code).toBe(1);
    expect(`${err.stdout}\n${err.stderr}`).toMatch(/budget-exceeded.*over the budget of 0\.5/);
  }, 600_000);
});
