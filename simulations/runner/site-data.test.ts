import { describe, expect, it } from 'vitest';
import { parseFederatedScenario, ScenarioError } from '../scenario.ts';
import { buildSiteData } from './site-data.ts';

const base = {
  kind: 'federated',
  name: 'partition test',
  seed: 5,
  data: { size: 16, numClasses: 4, slicesPerCase: 2, valFraction: 0.34 },
  sites: [
    { id: 'a', shift: 'scanner-a' },
    { id: 'b', shift: 'scanner-b' },
    { id: 'c', shift: 'scanner-c' },
  ],
  model: { baseChannels: 4, depth: 1 },
  training: { rounds: 1, localEpochs: 1, batchSize: 2, lr: 0.01 },
};

describe('site data of a partitioned scenario', () => {
  it('splits one phantom pool into disjoint shares that together cover it, each seen through its own scanner', async () => {
    const s = parseFederatedScenario('test.json', { ...base, partition: { kind: 'dirichlet', alpha: 0.3, poolCases: 18, minCasesPerSite: 3 } });
    const data = await Promise.all([0, 1, 2].map((i) => buildSiteData(s, i)));
    const cases = data.map((d) => new Set([...d.train.caseIds, ...d.val.caseIds]));
    const all = cases.flatMap((c) => [...c]);
    expect(new Set(all).size).toBe(all.length); // disjoint
    expect(all.length).toBe(18); // complete
    for (const c of cases) expect(c.size).toBeGreaterThanOrEqual(3);
    // Same case in two scanners would have equal labels but different images; across sites images differ anyway.
    expect(data[0].train.images.slice(0, 16)).not.toEqual(data[1].train.images.slice(0, 16));
  });

  it('is the same in every process: a second build gives identical shares', async () => {
    const s = parseFederatedScenario('test.json', { ...base, partition: { kind: 'quantity', alpha: 0.5, poolCases: 12, minCasesPerSite: 2 } });
    const first = await buildSiteData(s, 1);
    const again = await buildSiteData(s, 1);
    expect(again.train.caseIds).toEqual(first.train.caseIds);
    expect(again.train.labels).toEqual(first.train.labels);
  });

  it('refuses partitions that cannot give every site its minimum, naming the field', () => {
    expect(() => parseFederatedScenario('bad.json', { ...base, partition: { kind: 'dirichlet', alpha: 1, poolCases: 5, minCasesPerSite: 2 } })).toThrow(
      ScenarioError,
    );
    expect(() => parseFederatedScenario('bad.json', { ...base, partition: { kind: 'dirichlet', alpha: 1, poolCases: 5, minCasesPerSite: 2 } })).toThrow(/partition.poolCases/);
  });
});
