/**
 * Many sites per process (`sitesPerProcess`, how 100 sites fit on one machine): six tiny sites in two site
 * processes run every round like separate hospitals. Each site still sees only its own data: what it reports is what
 * its own data alone gives (built here independently), and each is scored separately. The run reports the peak memory
 * of the coordinator and of each site process.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { classHistogram } from '../simulations/partition/index.ts';
import { runFederatedSimulation } from '../simulations/runner/index.ts';
import { buildSiteData } from '../simulations/runner/site-data.ts';
import { loadScenarioFile, parseFederatedScenario } from '../simulations/scenario.ts';

const shifts = ['scanner-a', 'scanner-b', 'scanner-c'];
const scenario = {
  kind: 'federated',
  name: 'test: six tiny sites in two processes',
  seed: 5,
  data: { size: 16, numClasses: 3, slicesPerCase: 4, valFraction: 0.34 },
  sites: Array.from({ length: 6 }, (_, i) => ({ id: `site-${i}`, shift: shifts[i % 3], numCases: 3 })),
  sitesPerProcess: 3,
  model: { baseChannels: 4, depth: 1 },
  training: { rounds: 2, localEpochs: 1, batchSize: 4, lr: 0.01, optimizer: 'adam', loss: 'ce+dice', strategy: 'fedavg', stageTimeoutMs: 300_000 },
};

describe('fedsfda simulate with several sites per process', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fedsfda-shared-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('runs six sites in two processes: every round with every site, each site on its own data, memory reported', async () => {
    const config = join(dir, 'scenario.json');
    await writeFile(config, JSON.stringify(scenario));
    const lines: string[] = [];
    const parsed = parseFederatedScenario(config, (await loadScenarioFile(config)).raw);
    const summary = await runFederatedSimulation({ scenarioFile: config, scenario: parsed, outDir: join(dir, 'out'), onLog: (l) => lines.push(l), timeoutMs: 900_000 });

    expect(summary.interrupted).toBe(false);
    expect(summary.rounds.map((r) => r.round)).toEqual([1, 2]);
    expect(summary.rounds.every((r) => r.failures === 0)).toBe(true);
    const history = JSON.parse(await readFile(join(dir, 'out', 'history.json'), 'utf8')) as { sites: { siteId: string }[] }[];
    for (const record of history) expect(record.sites.map((s) => s.siteId).sort()).toEqual(scenario.sites.map((s) => s.id));
    // Two processes were started, named after their sites.
    expect(lines.filter((l) => l.includes('ready on backend')).length).toBe(6);
    expect(summary.memory?.siteProcesses).toBe(2);
    expect(summary.memory?.sitesPerProcess).toBe(3);
    expect(summary.memory?.coordinatorPeakRssMb).toBeGreaterThan(10);
    expect(summary.memory?.sitePeakRssMbMax).toBeGreaterThan(10);
    expect(lines.some((l) => l.startsWith('peak memory (RSS): coordinator'))).toBe(true);
    // Isolation: each site reports what its own data alone gives, and has its own score.
    for (const [i, s] of summary.sites.entries()) {
      const own = await buildSiteData(parsed, i);
      expect(s.classHistogram).toEqual(classHistogram(own.train));
      expect(s.trainSlices).toBe(own.train.n);
      expect(s.dice.mean).not.toBeNull();
    }
  });
});
