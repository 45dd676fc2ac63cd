import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { runTrainBench } from './train-bench.ts';
import { pythonExecutable } from './pytorch-baseline.ts';

const torchInstalled = spawnSync(pythonExecutable(), ['-c', 'import torch'], { stdio: 'ignore' }).status === 0;

describe('bench train: wall, best-step and CPU figures', () => {
  it('reports mean, best and CPU time per step of the selected path, consistent with each other', async () => {
    // Arrange / Act: a tiny network so the test is quick.
    const r = await runTrainBench({ size: 16, batch: 2, warmup: 1, steps: 3, cpuBaseline: false, compare: false, pytorch: false });
    // Assert
    expect(r.bestMsPerStep).toBeGreaterThan(0);
    expect(r.bestMsPerStep).toBeLessThanOrEqual(r.msPerStep + 0.05);
    expect(r.cpuMsPerStep).toBeGreaterThan(0);
    expect(r.pytorchCpuMsPerStep).toBeNull();
    expect(r.cpuRatioVsPytorch).toBeNull();
    expect(r.bestRatioVsPytorch).toBeNull();
  }, 120_000);

  it('with both engine paths: CPU time per step of each and the CPU speed-up of the plan', async () => {
    const r = await runTrainBench({ size: 16, batch: 2, warmup: 1, steps: 2, cpuBaseline: false, compare: true, pytorch: false });
    if (r.planMsPerStep === null) {
      expect(r.planCpuSpeedup).toBeNull();  // no plans on this backend: one path only
      return;
    }
    expect(r.opsCpuMsPerStep).toBeGreaterThan(0);
    expect(r.planCpuMsPerStep).toBeCloseTo(r.cpuMsPerStep, 1);
    // Both CPU figures are rounded to 0.1 ms (a few ms at this size): compare the speed-up relatively.
    expect(Math.abs(r.planCpuSpeedup! / (r.opsCpuMsPerStep! / r.planCpuMsPerStep!) - 1)).toBeLessThan(0.05);
  }, 120_000);

  it.skipIf(!torchInstalled)('measures PyTorch in the same run: mean, best and CPU per step, and the three ratios', async () => {
    const r = await runTrainBench({ size: 16, batch: 2, warmup: 1, steps: 3, cpuBaseline: false, compare: false, pytorch: true });
    expect(r.pytorch).toMatch(/^torch /);
    const [mean, best, cpu] = [r.pytorchMsPerStep!, r.pytorchBestMsPerStep!, r.pytorchCpuMsPerStep!];
    expect(best).toBeGreaterThan(0);
    expect(best).toBeLessThanOrEqual(mean + 0.05);
    expect(cpu).toBeGreaterThan(0);
    expect(r.ratioVsPytorch).toBeCloseTo(r.msPerStep / mean, 1);
    expect(r.bestRatioVsPytorch).toBeCloseTo(r.bestMsPerStep / best, 1);
    expect(r.cpuRatioVsPytorch).toBeCloseTo(r.cpuMsPerStep / cpu, 1);
  }, 300_000);
});
