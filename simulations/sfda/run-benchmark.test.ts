import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-core/dist/register_all_gradients';
import { readFile } from 'node:fs/promises';
import { beforeAll, describe, expect, it } from 'vitest';
import { BENCHMARK_METHODS, formatMethodsTable, parseSfdaBenchmarkConfig, runSfdaBenchmark, SfdaBenchmarkError, weightedAverage } from './index.ts';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

describe('sfda benchmark', () => {
  it.each(['sfda-benchmark.json', 'sfda-benchmark-polarity.json', 'sfda-mricron.json', 'sfda-mricron-no-polarity.json'])('the shipped scenario %s validates', async (file) => {
    const raw = JSON.parse(await readFile(new URL(`../scenarios/${file}`, import.meta.url), 'utf8'));
    expect(parseSfdaBenchmarkConfig(raw).seeds).toEqual([1, 2, 3]);
    expect(() => parseSfdaBenchmarkConfig({ ...raw, seeds: [] })).toThrow(SfdaBenchmarkError);
    expect(() => parseSfdaBenchmarkConfig({ ...raw, targetSupervised: { ...raw.targetSupervised, numCases: 0 } })).toThrow(SfdaBenchmarkError);
  });

  it('FedAvg weights sites by their example counts', () => {
    const a = [{ name: 'w', shape: [2], data: Float32Array.from([0, 4]) }];
    const b = [{ name: 'w', shape: [2], data: Float32Array.from([3, 0]) }];
    expect([...weightedAverage([a, b], [1, 2])[0].data]).toEqual([2, 4 / 3].map((v) => Math.fround(v)));
  });

  it('runs end to end on a minimal configuration and reports every method', async () => {
    const steps: string[] = [];
    const r = await runSfdaBenchmark(
      parseSfdaBenchmarkConfig({
        kind: 'sfda-benchmark',
        name: 'smoke',
        seeds: [1],
        data: { size: 16, numClasses: 3, slicesPerCase: 2, sourceSites: [{ shift: 'scanner-a', numCases: 1 }], target: { shift: 'mr-to-ct', adaptCases: 1, testCases: 1 } },
        model: { baseChannels: 4, depth: 1 },
        federated: { rounds: 1, localEpochs: 1, batchSize: 2, lr: 0.01 },
        targetSupervised: { epochs: 1, lr: 0.01, numCases: 2 },
        adapt: { batchSize: 2, common: { epochs: 1, inputPolarities: [1, -1] } },
      }),
      { onProgress: (m) => steps.push(m) },
    );
    expect(Object.keys(r.methods).sort()).toEqual([...BENCHMARK_METHODS].sort());
    for (const m of BENCHMARK_METHODS) expect(r.methods[m].runs).toHaveLength(1);
    expect(steps.some((s) => s.includes('FedAvg round 1/1'))).toBe(true);
    expect(formatMethodsTable(r)).toContain('target-supervised');
    // The upper bound trained on its own 2 labelled target cases (2 slices each), not on the adaptation case.
    expect(r.methods['target-supervised'].runs[0].notes).toEqual(['trained on 4 labelled target slices']);
    for (const m of ['adabn', 'tent', 'osuda', 'gmm-swd'] as const) expect(r.methods[m].runs[0].notes[0]).toMatch(/^input polarity [+-]1 /);
  });
});
