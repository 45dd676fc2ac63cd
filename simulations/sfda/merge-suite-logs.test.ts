import { describe, expect, it } from 'vitest';
import { mergeSuiteLines, replaySafeguard } from './merge-suite-logs.ts';
import { parseSfdaSuiteConfig } from './suite-config.ts';
import { formatSuiteDataset, safeguardFallbacks } from './suite-table.ts';

const cfg = parseSfdaSuiteConfig(
  {
    kind: 'sfda-suite',
    name: 'merge',
    seeds: [1, 2],
    datasets: [
      {
        name: 'phantom', anatomy: 'phantom', size: 24, numClasses: 3, slicesPerCase: 4,
        sourceSites: [{ shift: 'scanner-a', numCases: 3 }], sourceTestCases: 1, adaptCases: 2, testCases: 2,
        families: [{ name: 'inversion', shift: 'mr-to-ct' }, { name: 'mild', shift: 'scanner-c', heldOut: true }],
      },
    ],
    model: { baseChannels: 8, depth: 1 },
    federated: { rounds: 1, localEpochs: 1, batchSize: 4, lr: 0.02 },
    targetSupervised: { numCases: 1, epochs: 1, lr: 0.01 },
    fewLabel: { cases: [], options: {} },
    adapt: { batchSize: 4, rows: [{ name: 'adabn', method: 'adabn' }] },
  },
  'merge-test',
);

describe('merging suite logs', () => {
  it('collects the cells of logs from separate processes, one seed each, and a run stopped early', () => {
    const seed1 = [
      'phantom seed 1: federated round 1/1 loss 0.5',
      'phantom seed 1: in-domain source Dice federated 0.700, centralized 0.720',
      'phantom seed 1 inversion: source-only Dice 0.100 (0.0 s) [label-free: entropy 0.1]',
      'phantom seed 1 inversion: adabn Dice 0.500 (1.5 s) | a note',
      'phantom seed 1 inversion: target-supervised Dice 0.900 (3.0 s)',
    ];
    // Seed 2 stopped during the family: no supervised cell.
    const seed2 = ['phantom seed 2: in-domain source Dice federated 0.800, centralized NaN', 'phantom seed 2 inversion: source-only Dice 0.300 (0.0 s)', 'phantom seed 2 inversion: adabn Dice 0.700 (1.0 s)'];
    const { results, seeds } = mergeSuiteLines(cfg, [...seed2, ...seed1]);
    expect(seeds.get('phantom')).toEqual([1, 2]);
    const r = results[0];
    expect(r.cells.adabn.inversion.map((c) => [c.seed, c.dice])).toEqual([[1, 0.5], [2, 0.7]]);
    expect(r.cells['target-supervised'].inversion.map((c) => c.dice)).toEqual([0.9]);
    expect(r.cells.adabn.mild).toEqual([]);
    const text = formatSuiteDataset(r, [1, 2]);
    expect(text).toContain('0.600±0.100');
    // Gap closed by adabn: (0.6 - 0.2) / (0.9 - 0.2).
    expect(text).toContain('57%');
  });

  it('replays the do-no-harm safeguard on the logged label-free scores, falling back to source-only where it rejects', () => {
    const lines = [
      'phantom seed 1: in-domain source Dice federated 0.700, centralized 0.720',
      'phantom seed 1 inversion: source-only Dice 0.400 (0.0 s) [label-free: entropy 0.1000, prior KL 0.0100, consistency 0.9000]',
      'phantom seed 1 inversion: adabn Dice 0.100 (1.0 s) [label-free: entropy 0.2000, prior KL 0.0100, consistency 0.8000]',
      'phantom seed 1 mild: source-only Dice 0.400 (0.0 s) [label-free: entropy 0.1000, prior KL 0.0100, consistency 0.9000]',
      'phantom seed 1 mild: adabn Dice 0.600 (1.0 s) [label-free: entropy 0.0800, prior KL 0.0050, consistency 0.9200]',
    ];
    const { results } = mergeSuiteLines(cfg, lines);
    const { fallbacks, guarded } = replaySafeguard(results[0]);
    expect(fallbacks).toHaveLength(1);
    expect(fallbacks[0]).toMatch(/^phantom inversion adabn seed 1: Dice 0.100 -> 0.400 \(less certain and less stable/);
    expect(guarded.get('adabn')?.get('inversion')).toBe(0.4);
    expect(guarded.get('adabn')?.get('mild')).toBe(0.6);
  });

  it('counts the fallbacks the safeguard made when the cells ran (by their note) per row, and does not judge those cells again', () => {
    const lines = [
      'phantom seed 1: in-domain source Dice federated 0.700, centralized 0.720',
      'phantom seed 1 inversion: source-only Dice 0.400 (0.0 s) [label-free: entropy 0.1000, prior KL 0.0100, consistency 0.9000]',
      'phantom seed 1 inversion: adabn Dice 0.400 (1.0 s) [label-free: entropy 0.2000, prior KL 0.0100, consistency 0.8000] | safeguard: fell back to the unadapted model [LESS_CERTAIN_AND_LESS_STABLE]: less certain',
      'phantom seed 1 mild: source-only Dice 0.400 (0.0 s) [label-free: entropy 0.1000, prior KL 0.0100, consistency 0.9000]',
      'phantom seed 1 mild: adabn Dice 0.600 (1.0 s) [label-free: entropy 0.0800, prior KL 0.0050, consistency 0.9200] | safeguard: kept (prior KL 0.0100 -> 0.0050)',
    ];
    const r = mergeSuiteLines(cfg, lines).results[0];
    expect(r.cells.adabn.inversion[0].notes).toEqual(['safeguard: fell back to the unadapted model [LESS_CERTAIN_AND_LESS_STABLE]: less certain']);
    expect(safeguardFallbacks(r).get('adabn')).toEqual({ fallbacks: 1, cells: 2 });
    expect(formatSuiteDataset(r, [1])).toContain('phantom: safeguard fallbacks to the unadapted model per row: adabn 1/2');
    expect(replaySafeguard(r).fallbacks).toEqual([]);
  });
});
