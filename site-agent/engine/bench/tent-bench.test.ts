import { describe, expect, it } from 'vitest';
import { runTentBench } from './tent-bench.ts';
import { loadNativeAddon } from '../native-addon.ts';

const native = loadNativeAddon().ok;

describe('bench tent: one TENT epoch on the compiled plan and op by op, same run', () => {
  it.skipIf(!native)('times both paths from the same weights: same first loss, the plan path ran plans, the ops path none', async () => {
    // Arrange
    const before = process.env.FEDSFDA_ENGINE;
    // Act: 6 slices at batch 4 = 2 TENT steps (the last batch smaller) + the AdaBN pass.
    const r = await runTentBench({ slices: 6, batch: 4, size: 16, backend: 'fedsfda-native' });
    // Assert
    expect(process.env.FEDSFDA_ENGINE).toBe(before);
    const plan = r.runs.find((x) => x.engine === 'plan')!;
    const ops = r.runs.find((x) => x.engine === 'ops')!;
    expect(plan.steps).toBe(2);
    expect(ops.steps).toBe(2);
    expect(plan.planRuns).toBeGreaterThanOrEqual(2);
    expect(ops.planRuns).toBe(0);
    expect(Math.abs(plan.firstLoss - ops.firstLoss)).toBeLessThan(1e-4 * (1 + Math.abs(ops.firstLoss)));
    expect(r.planEpochMs).toBeGreaterThan(0);
    expect(r.planSpeedup).toBeCloseTo(r.opsEpochMs / r.planEpochMs!, 1);
  }, 300_000);
});
