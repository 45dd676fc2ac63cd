/**
 * A new hospital's scans as DICOM with no labels: a bare folder (a PACS export: series folders, several series in
 * one folder, stray non-DICOM files) and `images/<case>/` folders are read as unlabeled cases; bare-folder series
 * are named series-001, ... exactly as `fedsfda data import-dicom` numbers them, never by header text.
 */
import { mkdir, mkdtemp, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { importDicom } from '../cli/index.ts';
import { dicomToolsAvailable, writeSeries } from '../dicom/dicom-fixtures.ts';
import { readDicomSeries } from '../dicom/index.ts';
import { geometryFromSpacing, readNifti, writeNifti } from '../nifti/index.ts';
import { DatasetError, discoverImages, loadImageCases } from './index.ts';

const available = await dicomToolsAvailable();
const SECRET = 'Doe^Jane';
const OBLIQUE = [0.866025, 0.5, 0, -0.383022, 0.663414, 0.642788];

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'fedsfda-unlabeled-dicom-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe.skipIf(!available)('unlabeled DICOM input (python3-pydicom, dcm2niix)', () => {
  it('reads every series of a bare DICOM folder as a case, numbered as import-dicom numbers them', async () => {
    const scans = join(dir, 'export');
    await writeSeries({ out: join(scans, 'exam', 'a'), rows: 8, cols: 6, slices: 3, patient_name: SECRET, seed: 1 });
    await writeSeries({ out: join(scans, 'exam', 'b'), rows: 10, cols: 7, slices: 4, iop: OBLIQUE, patient_name: SECRET, seed: 2 });
    // A third series stored in the same folder as the second (files named after the second's, so listed after them).
    const c = await writeSeries({ out: join(dir, 'c-alone'), rows: 9, cols: 9, slices: 2, step: 4, patient_name: SECRET, seed: 3 });
    for (const f of await readdir(c)) await rename(join(c, f), join(scans, 'exam', 'b', `X-${f}`));
    await writeFile(join(scans, 'exam', 'notes.txt'), 'not an image\n');

    const ds = await discoverImages(scans);
    expect(ds.layout).toBe('dicom');
    expect(ds.cases.map((k) => k.id)).toEqual(['series-001', 'series-002', 'series-003']);
    expect(ds.cases.map((k) => k.dicomFiles?.length)).toEqual([3, 4, 2]);

    const loaded = await loadImageCases(scans);
    expect(loaded.channels).toBe(1);
    expect(loaded.cases.map((k) => [...k.image.dims].sort((a, b) => a - b))).toEqual([[3, 6, 8], [4, 7, 10], [2, 9, 9]]);
    const alone = await readDicomSeries(join(scans, 'exam', 'a'));
    expect(loaded.cases[0].image.affine).toEqual(alone.affine);
    expect(Array.from(loaded.cases[0].channels[0])).toEqual(Array.from(alone.data));

    // import-dicom writes series-00k.nii.gz for the same series k.
    const report = await importDicom(scans, join(dir, 'imported'));
    expect(report.ok).toBe(true);
    for (const [k, lc] of loaded.cases.entries()) {
      expect(report.series[k].file).toBe(`${lc.id}.nii.gz`);
      const v = await readNifti(join(dir, 'imported', report.series[k].file!));
      expect(v.dims).toEqual(lc.image.dims);
      for (let i = 0; i < 3; i++) for (let j = 0; j < 4; j++) expect(Math.abs(v.affine[i][j] - lc.image.affine[i][j])).toBeLessThan(1e-4);
      expect(Array.from(v.data)).toEqual(Array.from(lc.channels[0]));
    }
    expect(JSON.stringify(ds)).not.toContain('Doe');
  });

  it('reads images/<case>/ DICOM folders next to NIfTI images', async () => {
    const root = join(dir, 'mixed');
    await writeSeries({ out: join(root, 'images', 'p1'), rows: 8, cols: 6, slices: 3, seed: 4 });
    await writeNifti(join(root, 'images', 'p2.nii.gz'), new Float32Array(6 * 8 * 3).fill(1), geometryFromSpacing([6, 8, 3], [1, 1, 2.5]), { datatype: 'float32' });
    const loaded = await loadImageCases(root);
    expect(loaded.dataset.layout).toBe('images');
    expect(loaded.cases.map((k) => k.id)).toEqual(['p2', 'p1']);
    expect(loaded.cases[1].image.dims).toEqual(loaded.cases[0].image.dims);
  });

  it('refuses a folder with neither NIfTI images nor DICOM series, saying why', async () => {
    const root = join(dir, 'nothing');
    await mkdir(root);
    await writeFile(join(root, 'report.pdf'), '%PDF-1.4 not an image');
    const err = await discoverImages(root).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DatasetError);
    expect((err as DatasetError).code).toBe('NOT_A_DATASET');
    expect((err as DatasetError).message).toMatch(/no NIfTI images \(\.nii, \.nii\.gz\) and no DICOM image series in the folder; 1 file\(s\) are not usable DICOM images, the first: .* \[NOT_DICOM\]/);
  });
});
