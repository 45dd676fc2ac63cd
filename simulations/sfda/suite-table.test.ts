import { describe, expect, it } from 'vitest';
import type { CellRun, DatasetResult } from './suite-run.ts';
import { formatSuiteDataset, summarizeFamilies } from './suite-table.ts';

const cell = (dice: number): CellRun => ({ seed: 1, dice, assd: NaN, infiniteCount: 0, wallMs: 0, notes: [] });

/** One seed, two families: "shifted" has a gap (0.4 -> 0.9), "mild" has none (source-only 0.75 above supervised 0.73). */
const result: DatasetResult = {
  name: 'toy',
  families: [{ name: 'shifted', heldOut: false }, { name: 'mild', heldOut: false }],
  rows: ['source-only', 'adabn', 'target-supervised'],
  cells: {
    'source-only': { shifted: [cell(0.4)], mild: [cell(0.75)] },
    adabn: { shifted: [cell(0.8)], mild: [cell(0.77)] },
    'target-supervised': { shifted: [cell(0.9)], mild: [cell(0.73)] },
  },
  source: [{ seed: 1, federated: 0.8, centralized: 0.8 }],
};

describe('suite table: share of the gap', () => {
  it('is the best row over the source-only -> supervised gap, and "no gap" when source-only is not below supervised', () => {
    const [shifted, mild] = summarizeFamilies(result);
    expect(shifted.noGap).toBe(false);
    expect(shifted.best?.gapClosed).toBeCloseTo(0.8, 10);
    expect(mild.noGap).toBe(true);
    expect(mild.best).toMatchObject({ row: 'adabn', dice: 0.77 });
    expect(mild.best?.gapClosed).toBeNaN();
    const text = formatSuiteDataset(result, [1]);
    expect(text).toMatch(/^gap closed\s+80%\s+no gap\s*$/m);
    expect(text).toContain('toy mild: no gap: source-only 0.750 vs target-supervised 0.730; above target-supervised: source-only, adabn');
  });
});
