/**
 * DICOM series -> volumes, checked against Debian's dcm2niix on the same inputs (pydicom's real test files and
 * series written with pydicom: axial, oblique, big-endian, implicit VR, RLE, rescaled, shuffled files), plus the
 * refusals (gantry tilt, non-uniform spacing, duplicate positions, compressed syntaxes by name, several series).
 */
import { copyFile, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compareVolumes, dcm2niixVolume, dicomToolsAvailable, PYDICOM_TEST_FILES, writeSeries, type SeriesSpec } from './dicom-fixtures.ts';
import { DicomError, readDicomSeries, scanDicomFolder, type DicomErrorCode } from './index.ts';

const available = await dicomToolsAvailable();
if (!available) console.warn('DICOM tests skipped: need /usr/bin/python3 with pydicom (python3-pydicom) and dcm2niix (apt-get install python3-pydicom dcm2niix)');

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'fedsfda-dicom-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function codeOf(p: Promise<unknown>): Promise<{ code: DicomErrorCode; message: string }> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(DicomError);
    return { code: (e as DicomError).code, message: (e as DicomError).message };
  }
  throw new Error('expected a DicomError');
}

async function againstDcm2niix(name: string, inDir: string): Promise<{ affine: number; voxels: number }> {
  const ours = await readDicomSeries(inDir);
  const ref = await dcm2niixVolume(inDir, join(dir, `${name}-dcm2niix`));
  const c = compareVolumes(ours, ref);
  expect(c.sameDims, `${name}: dims ${ours.dims} vs dcm2niix ${ref.dims}`).toBe(true);
  return c;
}

describe.skipIf(!available)('DICOM series against dcm2niix', () => {
  it.each(['MR_small.dcm', 'CT_small.dcm', 'MR_small_bigendian.dcm', 'MR_small_implicit.dcm', 'MR_small_RLE.dcm', 'MR_small_expb.dcm', 'MR_small_padded.dcm'])(
    "pydicom's %s: same voxels, affine within 1e-4 mm",
    async (file) => {
      const inDir = join(dir, `real-${file}`);
      await mkdir(inDir, { recursive: true });
      await copyFile(join(PYDICOM_TEST_FILES, file), join(inDir, file));
      const c = await againstDcm2niix(file, inDir);
      expect(c.voxels).toBe(0);
      expect(c.affine).toBeLessThan(1e-4);
    },
  );

  const generated: Array<[string, Partial<SeriesSpec>]> = [
    ['axial, rescaled int16, shuffled files', { slope: 2, intercept: -1024 }],
    ['oblique (30 and 45 degrees)', { iop: [0.8660254, 0.5, 0, -0.35355339, 0.61237244, 0.70710678], step: 3 }],
    ['strongly oblique, near sagittal, descending instance numbers', { iop: [0.1, 0.99498744, 0, 0.2, -0.01989975, -0.97959179], step: 1.7, instance_numbers: 'descending' }],
    ['coronal, big-endian', { iop: [1, 0, 0, 0, 0, -1], syntax: 'bigendian' }],
    ['implicit VR, unsigned 8-bit', { syntax: 'implicit', bits: 8, signed: false }],
  ];
  it.each(generated)('pydicom-written series, %s: same voxels, affine within 1e-4 mm', async (name, spec) => {
    const inDir = await writeSeries({ out: join(dir, `gen-${name.replace(/\W+/g, '-')}`), rows: 14, cols: 11, slices: 7, seed: name.length, ...spec });
    const c = await againstDcm2niix(name, inDir);
    expect(c.voxels).toBe(0);
    expect(c.affine).toBeLessThan(1e-4);
  });

  it('orders slices by position alone when instance numbers are missing', async () => {
    // (dcm2niix guesses an order from other fields here, so the reference is the same series with numbers.)
    const spec = { rows: 9, cols: 8, slices: 6, seed: 5, iop: [0.8660254, 0.5, 0, -0.35355339, 0.61237244, 0.70710678] };
    const numbered = await readDicomSeries(await writeSeries({ out: join(dir, 'numbered'), ...spec }));
    const bare = await readDicomSeries(await writeSeries({ out: join(dir, 'unnumbered'), ...spec, instance_numbers: 'none' }));
    const c = compareVolumes(bare, numbered);
    expect([c.voxels, c.affine]).toEqual([0, 0]);
  });

  it('takes the slice spacing from the positions, not SliceThickness', async () => {
    const inDir = await writeSeries({ out: join(dir, 'spacing'), slices: 5, step: 2.5, iop: [0.8660254, 0.5, 0, -0.5, 0.8660254, 0] });
    const v = await readDicomSeries(inDir);
    // The writer puts SliceThickness 99 in every file; the positions are 2.5 mm apart.
    expect(v.spacing.map((s) => +s.toFixed(4)).sort()).toEqual([0.9, 1.1, 2.5]);
  });
});

describe.skipIf(!available)('DICOM series fedsfda refuses, by name', () => {
  it('gantry tilt, with the angle', async () => {
    const e = await codeOf(readDicomSeries(await writeSeries({ out: join(dir, 'tilt'), slices: 5, step: 3, tilt_mm: 0.5 })));
    expect(e.code).toBe('GANTRY_TILT');
    expect(e.message).toMatch(/9\.46\d degrees from their normal/);
  });

  it('non-uniform slice spacing, with the range', async () => {
    const e = await codeOf(readDicomSeries(await writeSeries({ out: join(dir, 'gap'), slices: 5, positions: [0, 2, 4, 7, 9] })));
    expect(e.code).toBe('NON_UNIFORM_SPACING');
    expect(e.message).toMatch(/from 2\.0000 to 3\.0000 mm/);
  });

  it('several slices at one position (echoes, time points)', async () => {
    const e = await codeOf(readDicomSeries(await writeSeries({ out: join(dir, 'dup'), slices: 4, positions: [0, 2, 2, 4] })));
    expect(e.code).toBe('DUPLICATE_POSITION');
  });

  it('compressed transfer syntaxes by name, and folders with no or several series', async () => {
    const j2k = join(dir, 'j2k');
    await mkdir(j2k);
    await copyFile(join(PYDICOM_TEST_FILES, 'JPEG2000.dcm'), join(j2k, 'a.dcm'));
    const scan = await scanDicomFolder(j2k);
    expect(scan.skipped[0].code).toBe('UNSUPPORTED_TRANSFER_SYNTAX');
    expect(scan.skipped[0].message).toMatch(/JPEG 2000 Image Compression/);
    expect((await codeOf(readDicomSeries(j2k))).code).toBe('NO_SERIES');
    const two = join(dir, 'two');
    await writeSeries({ out: join(two, 'a'), slices: 3 });
    await writeSeries({ out: join(two, 'b'), slices: 4 });
    const e = await codeOf(readDicomSeries(two));
    expect(e.code).toBe('SEVERAL_SERIES');
    expect(e.message).toMatch(/2 series \((3 slices, 4 slices|4 slices, 3 slices)\)/);
  });
});
