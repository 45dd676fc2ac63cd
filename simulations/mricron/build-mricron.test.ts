import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkPath } from '../../site-agent/data/cli/index.ts';
import { loadSiteDataset } from '../../site-agent/data/dataset/index.ts';
import { buildMricronDatasets, DEFAULT_MRICRON_DIR, MricronError } from './index.ts';

const HAS_MRICRON = existsSync(join(DEFAULT_MRICRON_DIR, 'ch2.nii.gz')) && existsSync(join(DEFAULT_MRICRON_DIR, 'aal.nii.gz'));
if (!HAS_MRICRON) {
  console.warn(`mricron-data is not installed (${DEFAULT_MRICRON_DIR} missing): skipping build-mricron tests. Install with: apt-get install mricron-data`);
}

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'fedsfda-mricron-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('build-mricron without the package', () => {
  it('says exactly how to install it', async () => {
    let err: unknown;
    try {
      await buildMricronDatasets({ out: join(dir, 'x'), sites: 1, templatesDir: join(dir, 'empty') });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(MricronError);
    expect((err as MricronError).code).toBe('MRICRON_DATA_MISSING');
    expect((err as Error).message).toContain('apt-get install mricron-data');
  });
});

describe.skipIf(!HAS_MRICRON)('build-mricron with mricron-data', () => {
  it('builds per-site Decathlon datasets that pass check and load as SliceDatasets', async () => {
    const out = join(dir, 'brains');
    const sites = await buildMricronDatasets({ out, sites: 2, casesPerSite: 2, testCasesPerSite: 1, slabSlices: 4, downsample: 4, scanners: ['scanner-a', 'mr-to-ct'], seed: 3 });
    expect(sites.map((s) => s.scanner)).toEqual(['scanner-a', 'mr-to-ct']);
    for (const s of sites) {
      const report = await checkPath(s.dir);
      expect(report.ok, JSON.stringify(report.files.filter((f) => !f.ok))).toBe(true);
      expect(report.usableCases).toBe(2);
      const json = JSON.parse(await readFile(join(s.dir, 'dataset.json'), 'utf8'));
      expect(json.labels).toEqual({ '0': 'background', '1': 'cerebral cortex', '2': 'deep grey nuclei', '3': 'cerebellum' });
      expect(json.test).toHaveLength(1);
      const site = await loadSiteDataset(s.dir, { size: 16 });
      expect(site.dataset.n).toBe(2 * 4);
      expect(site.dataset.numClasses).toBeLessThanOrEqual(4);
      expect(site.dataset.sliceThickness).toBe(4);
      expect(new Set(site.dataset.labels).size).toBeGreaterThan(1);
    }
    // Same anatomy source, different scanner: the site images differ; the build is deterministic.
    const again = await buildMricronDatasets({ out: join(dir, 'again'), sites: 1, casesPerSite: 2, slabSlices: 4, downsample: 4, scanners: ['scanner-a'], seed: 3 });
    const a = await readFile(join(sites[0].dir, 'labelsTr', 'site1_case000.nii.gz'));
    const b = await readFile(join(again[0].dir, 'labelsTr', 'site1_case000.nii.gz'));
    expect(a.equals(b)).toBe(true);
    // Reads three 1 mm templates twice; generous for a loaded 2-core machine.
  });
});
