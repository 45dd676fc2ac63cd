/**
 * `npm run check:nibabel` inside the test suite: fedsfda's NIfTI reader and nibabel 5.0 agree on every file
 * (shape, dtype, axis codes, canonical shape and affine, spacing, every voxel), and refuse the same files.
 * Needs Debian's python3-nibabel (.ci/system-deps installs it with nifti-bin and dcm2niix); skipped without it.
 */
import { describe, expect, it } from 'vitest';
import { nibabelAvailable, runNibabelCheck } from '../scripts/nibabel-check/compare.ts';

const available = await nibabelAvailable();
if (!available) console.warn('nibabel agreement test skipped: /usr/bin/python3 cannot import nibabel (apt-get install python3-nibabel)');

describe.skipIf(!available)('fedsfda NIfTI reader vs nibabel 5.0', () => {
  it('agrees on every file from nibabel, nifti_tool, dcm2niix and mricron, and refuses what nibabel refuses', async () => {
    const report = await runNibabelCheck();
    const disagreements = report.results.filter((r) => r.outcome === 'disagree').map((r) => `${r.file}: ${r.differences.join('; ')}`);
    expect(disagreements).toEqual([]);
    expect(report.agreeRead).toBeGreaterThan(100);
    expect(report.agreeRefused).toBeGreaterThan(5);
    // Only policy refusals (float32 overflow, complex data) are allowed on files nibabel reads.
    for (const r of report.results.filter((x) => x.outcome === 'refused-by-design')) expect(r.fedsfdaError).toMatch(/^(VALUE_OUT_OF_RANGE|UNSUPPORTED_DATATYPE)/);
  }, 600_000);
});
