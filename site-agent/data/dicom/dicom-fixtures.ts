/**
 * Test fixtures: DICOM series written by pydicom (scripts/dicom-check/write-series.py) and the same input converted
 * by Debian's dcm2niix, the reference the DICOM reader is checked against.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { readNifti, writeNifti, type NiftiVolume } from '../nifti/index.ts';
import { readDicomSeries } from './dicom-series.ts';

const run = promisify(execFile);
const WRITER = fileURLToPath(new URL('../../../scripts/dicom-check/write-series.py', import.meta.url));
export const PYDICOM_TEST_FILES = '/usr/lib/python3/dist-packages/pydicom/data/test_files';

/** True when /usr/bin/python3 has pydicom and dcm2niix is on the PATH (Debian python3-pydicom, dcm2niix). */
export async function dicomToolsAvailable(): Promise<boolean> {
  if (!existsSync(PYDICOM_TEST_FILES)) return false;
  try {
    await run('/usr/bin/python3', ['-c', 'import pydicom, numpy']);
    await run('dcm2niix', ['-v']).catch((e: { code?: unknown }) => {
      if (e.code === 'ENOENT') throw e;
    });
    return true;
  } catch {
    return false;
  }
}

export interface SeriesSpec {
  out: string;
  rows?: number;
  cols?: number;
  slices?: number;
  iop?: number[];
  origin?: number[];
  pixel_spacing?: number[];
  step?: number;
  positions?: number[];
  tilt_mm?: number;
  bits?: 8 | 16;
  signed?: boolean;
  slope?: number;
  intercept?: number;
  seed?: number;
  syntax?: 'explicit' | 'implicit' | 'bigendian';
  patient_name?: string;
  patient_id?: string;
  birth_date?: string;
  study_date?: string;
  series_uid?: string;
  description?: string;
  instance_numbers?: 'ascending' | 'descending' | 'none';
  values_file?: string;
}

export async function writeSeries(spec: SeriesSpec): Promise<string> {
  await run('/usr/bin/python3', [WRITER, JSON.stringify(spec)]);
  return spec.out;
}

/** dcm2niix's conversion of a folder holding one series, read back with fedsfda's (nibabel-checked) NIfTI reader. */
export async function dcm2niixVolume(inDir: string, outDir: string): Promise<NiftiVolume> {
  await mkdir(outDir, { recursive: true });
  await run('dcm2niix', ['-z', 'n', '-b', 'n', '-f', 'ref', '-o', outDir, inDir]);
  const files = (await readdir(outDir)).filter((f) => f.endsWith('.nii'));
  if (files.length !== 1) throw new Error(`dcm2niix wrote ${files.length} NIfTI files for ${inDir}`);
  return readNifti(join(outDir, files[0]));
}

/** Largest absolute difference between the canonical affines, and how many canonical voxels differ. */
export function compareVolumes(a: NiftiVolume, b: NiftiVolume): { affine: number; voxels: number; sameDims: boolean } {
  let affine = 0;
  for (let i = 0; i < 3; i++) for (let j = 0; j < 4; j++) affine = Math.max(affine, Math.abs(a.affine[i][j] - b.affine[i][j]));
  const sameDims = a.dims.every((d, i) => d === b.dims[i]);
  let voxels = 0;
  if (sameDims) for (let i = 0; i < a.data.length; i++) if (a.data[i] !== b.data[i]) voxels++;
  return { affine, voxels: sameDims ? voxels : Number.NaN, sameDims };
}

/**
 * One labelled case as a hospital would have it: the image as a DICOM series (`imageDir`, written by pydicom from
 * `image`, x fastest then y then z, rounded to int16) and its label map as NIfTI on the same grid (`labelFile`).
 */
export async function writeDicomCase(
  imageDir: string,
  labelFile: string,
  vol: { image: ArrayLike<number>; label: Uint8Array; dims: readonly [number, number, number] },
  spec: Partial<SeriesSpec> = {},
): Promise<void> {
  const [X, Y, Z] = vol.dims;
  const stored = Int16Array.from(vol.image, (v) => Math.max(-32768, Math.min(32767, Math.round(v))));
  await mkdir(imageDir, { recursive: true });
  const valuesFile = `${imageDir}.values.i16`;
  await writeFile(valuesFile, new Uint8Array(stored.buffer));
  await writeSeries({ ...spec, out: imageDir, rows: Y, cols: X, slices: Z, bits: 16, signed: true, values_file: valuesFile });
  await rm(valuesFile);
  // The series' own geometry, so the label lands on its voxels (same on-disk order: column, row, slice).
  const v = await readDicomSeries(imageDir);
  await writeNifti(labelFile, vol.label, v, { voxelOrder: 'source', datatype: 'uint8', label: true });
}
