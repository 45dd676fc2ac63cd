import { readFile } from 'node:fs/promises';
import { beforeAll, describe, expect, it } from 'vitest';
import { weightedAverageWeightSets } from '../../coordinator/strategies/index.ts';
import { initEngine } from '../../site-agent/engine/index.ts';
import { createUNet } from '../../site-agent/model/index.ts';
import { trainLocal } from '../../site-agent/training/index.ts';
import { generateSiteData } from '../phantoms/index.ts';
import { BENCHMARK_METHODS, formatMethodsTable, parseSfdaBenchmarkConfig, runSfdaBenchmark, SfdaBenchmarkError, trainFederatedSource } from './index.ts';

beforeAll(async () => {
  await initEngine();
});

describe('sfda benchmark', () => {
  it.each(['sfda-benchmark.json', 'sfda-benchmark-polarity.json', 'sfda-mricron.json', 'sfda-mricron-no-polarity.json'])('the shipped scenario %s validates', async (file) => {
    const raw = JSON.parse(await readFile(new URL(`../scenarios/${file}`, import.meta.url), 'utf8'));
    expect(parseSfdaBenchmarkConfig(raw).seeds).toEqual([1, 2, 3]);
    expect(() => parseSfdaBenchmarkConfig({ ...raw, seeds: [] })).toThrow(SfdaBenchmarkError);
    expect(() => parseSfdaBenchmarkConfig({ ...raw, targetSupervised: { ...raw.targetSupervised, numCases: 0 } })).toThrow(SfdaBenchmarkError);
  });

  it("the federated source model is the coordinator strategy's example-weighted mean of the sites' local updates", async () => {
    // Sites of unequal size, so that example weighting matters.
    const sites = [1, 3].map((numCases, s) => generateSiteData({ seed: 40 + s, numCases, slicesPerCase: 2, size: 16, numClasses: 3, shift: 'scanner-a' }));
    const config = { inChannels: 1, numClasses: 3, baseChannels: 4, depth: 1 } as const;
    const fed = createUNet(config, 5);
    const local = createUNet(config, 5);
    try {
      const initial = fed.getWeights();
      await trainFederatedSource(fed, sites, { rounds: 1, localEpochs: 1, batchSize: 2, lr: 0.01, seed: 9 });
      // The same round by hand: each site trains from the initial model with the seed the benchmark gives it.
      const updates = [];
      for (let s = 0; s < sites.length; s++) {
        local.setWeights(initial);
        await trainLocal(local, sites[s], { epochs: 1, batchSize: 2, optimizer: 'adam', lr: 0.01, loss: 'ce+dice', seed: 9 * 1000 + s });
        updates.push({ weights: local.getWeights(), numExamples: sites[s].n });
      }
      const expected = weightedAverageWeightSets(updates, initial);
      expect(fed.getWeights()).toEqual(expected);
      // Not the plain mean: the 3-case site counts three times.
      const plain = weightedAverageWeightSets(updates.map((u) => ({ ...u, numExamples: 1 })), initial);
      expect(fed.getWeights()).not.toEqual(plain);
    } finally {
      fed.dispose();
      local.dispose();
    }
  });

  it('on a contrast-inverted target every source-free method (with the polarity check) beats source-only by a wide margin', async () => {
    const steps: string[] = [];
    const r = await runSfdaBenchmark(
      parseSfdaBenchmarkConfig({
        kind: 'sfda-benchmark',
        name: 'smoke',
        seeds: [1],
        data: { size: 24, numClasses: 3, slicesPerCase: 4, sourceSites: [{ shift: 'scanner-a', numCases: 3 }, { shift: 'scanner-b', numCases: 3 }], target: { shift: 'mr-to-ct', adaptCases: 2, testCases: 2 } },
        model: { baseChannels: 8, depth: 1 },
        federated: { rounds: 4, localEpochs: 2, batchSize: 4, lr: 0.02 },
        targetSupervised: { epochs: 8, lr: 0.02, numCases: 4 },
        adapt: { batchSize: 4, common: { epochs: 2, inputPolarities: [1, -1] } },
      }),
      { onProgress: (m) => steps.push(m) },
    );
    expect(Object.keys(r.methods).sort()).toEqual([...BENCHMARK_METHODS].sort());
    for (const m of BENCHMARK_METHODS) expect(r.methods[m].runs).toHaveLength(1);
    expect(steps.some((s) => s.includes('FedAvg round 4/4'))).toBe(true);
    expect(formatMethodsTable(r)).toContain('target-supervised');
    // The upper bound trained on its own 4 labelled target cases (4 slices each), not on the adaptation cases.
    expect(r.methods['target-supervised'].runs[0].notes).toEqual(['trained on 16 labelled target slices']);
    // The unadapted model fails on the inverted contrast; an adapted model that is still the unadapted one would too.
    const sourceOnly = r.methods['source-only'].dice.mean;
    expect(sourceOnly).toBeLessThan(0.2);
    for (const m of ['adabn', 'tent', 'osuda', 'gmm-swd'] as const) {
      expect(r.methods[m].runs[0].notes[0]).toMatch(/^input polarity -1 /);
      expect([m, r.methods[m].dice.mean]).toEqual([m, expect.toSatisfy((d: number) => d > sourceOnly + 0.4)]);
    }
    expect(r.gapClosed.fraction).toBeGreaterThan(0.5);
  });
});
