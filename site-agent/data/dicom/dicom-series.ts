/**
 * DICOM folder -> series -> volumes. Slices are grouped by SeriesInstanceUID and ordered by ImagePositionPatient
 * projected on the slice normal (the cross product of ImageOrientationPatient's row and column directions); the
 * slice step comes from the positions, never from SliceThickness. The voxel-to-world transform is the DICOM one
 * (PS3.3 C.7.6.2.1.1, patient LPS) with x and y negated for NIfTI's RAS. Series a volume cannot represent
 * without resampling are refused by name: gantry tilt, non-uniform slice spacing, several slices at one position.
 * Each series becomes a NiftiVolume through the NIfTI decoder itself, so canonical orientation, spacing and
 * writing predictions back work exactly as for NIfTI input.
 */
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Mat44 } from '../nifti/affine.ts';
import { geometryFromAffine } from '../nifti/nifti-header.ts';
import { decodeNifti, DEFAULT_MAX_NIFTI_BYTES, type NiftiVolume } from '../nifti/read-nifti.ts';
import { encodeNifti } from '../nifti/write-nifti.ts';
import { DicomError, type DicomErrorCode } from './dicom-error.ts';
import { readDicomSlice, type DicomSlice } from './dicom-slice.ts';

export interface DicomReadOptions {
  /** Refuse series whose float32 volume exceeds this many bytes (default 1 GiB, as for NIfTI). */
  maxBytes?: number;
  /** Refuse folders with more files than this (default 100,000). */
  maxFiles?: number;
}

/** A file that is not part of any usable series, and why (numeric facts only). */
export interface SkippedDicomFile {
  readonly file: string;
  readonly code: DicomErrorCode;
  readonly message: string;
}

export interface DicomSeries {
  /** 1-based, in the order of each series' first file path: the only name a series gets in fedsfda's output. */
  readonly index: number;
  readonly slices: readonly DicomSlice[];
}

export interface DicomScan {
  readonly dir: string;
  readonly series: readonly DicomSeries[];
  readonly skipped: readonly SkippedDicomFile[];
}

async function listFiles(dir: string, max: number): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string): Promise<void> => {
    for (const e of (await readdir(d, { withFileTypes: true })).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      if (e.name.startsWith('.')) continue;
      const p = join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else if (e.isFile()) out.push(p);
      if (out.length > max) throw new DicomError('TOO_LARGE', dir, `more than ${max} files; point at one study or series folder`);
    }
  };
  await walk(dir);
  return out;
}

async function checkFolder(dir: string): Promise<void> {
  try {
    if (!(await stat(dir)).isDirectory()) throw new DicomError('NOT_FOUND', dir, 'is not a folder');
  } catch (e) {
    if (e instanceof DicomError) throw e;
    throw new DicomError('NOT_FOUND', dir, 'no such folder');
  }
}

/**
 * Reads every file under `dir` (in sorted path order) and groups the images by series, keeping `keep(slice)` of
 * each; series are numbered in the order of their first file, so every caller numbers them alike.
 */
async function groupFolder<T>(dir: string, opts: DicomReadOptions, keep: (s: DicomSlice) => T): Promise<{ groups: T[][]; skipped: SkippedDicomFile[] }> {
  await checkFolder(dir);
  const groups = new Map<string, T[]>();
  const skipped: SkippedDicomFile[] = [];
  for (const f of await listFiles(dir, opts.maxFiles ?? 100_000)) {
    try {
      const s = await readDicomSlice(f);
      const g = groups.get(s.seriesKey);
      if (g) g.push(keep(s));
      else groups.set(s.seriesKey, [keep(s)]);
    } catch (e) {
      if (!(e instanceof DicomError)) throw e;
      skipped.push({ file: f, code: e.code, message: e.message.replace(`${f}: `, '').replace(/ \[[A-Z_]+\]$/, '') });
    }
  }
  return { groups: [...groups.values()], skipped };
}

/** Reads every file under `dir`, groups the images into series; files that are not usable images are listed. */
export async function scanDicomFolder(dir: string, opts: DicomReadOptions = {}): Promise<DicomScan> {
  const { groups, skipped } = await groupFolder(dir, opts, (s) => s);
  return { dir, series: groups.map((slices, i) => ({ index: i + 1, slices })), skipped };
}

/** The files of one series found under a folder (numbered as scanDicomFolder and import-dicom number them). */
export interface DicomSeriesFiles {
  readonly index: number;
  readonly files: readonly string[];
}

/**
 * Lists the series under `dir` by file, without keeping pixel data (a folder of many series is listed in the
 * memory of one slice); readDicomFiles reads one series later.
 */
export async function listDicomSeries(dir: string, opts: DicomReadOptions = {}): Promise<{ series: DicomSeriesFiles[]; skipped: SkippedDicomFile[] }> {
  const { groups, skipped } = await groupFolder(dir, opts, (s) => s.file);
  return { series: groups.map((files, i) => ({ index: i + 1, files })), skipped };
}

const dot = (a: readonly number[], b: readonly number[]): number => a[0] * b[0] + a[1] * b[1] + a[2] * b[2];

function checkConsistent(where: string, slices: readonly DicomSlice[]): void {
  const r = slices[0];
  for (const s of slices) {
    if (s.rows !== r.rows || s.cols !== r.cols) throw new DicomError('INCONSISTENT_SERIES', where, `slices of ${r.cols}x${r.rows} and ${s.cols}x${s.rows} pixels in one series`);
    if (s.orientation.some((v, i) => Math.abs(v - r.orientation[i]) > 1e-4)) throw new DicomError('INCONSISTENT_SERIES', where, 'slices with different ImageOrientationPatient in one series (a localizer or a multi-orientation series)');
    if (s.pixelSpacing.some((v, i) => Math.abs(v - r.pixelSpacing[i]) > 1e-4 * Math.max(1, v))) throw new DicomError('INCONSISTENT_SERIES', where, `slices with pixel spacing ${r.pixelSpacing.join('x')} and ${s.pixelSpacing.join('x')} mm in one series`);
  }
}

/** Orders the slices along the normal and returns the step vector (LPS mm) after the tilt and spacing checks. */
function sliceGeometry(where: string, slices: readonly DicomSlice[]): { ordered: DicomSlice[]; step: [number, number, number] } {
  const o = slices[0].orientation;
  const row = [o[0], o[1], o[2]];
  const col = [o[3], o[4], o[5]];
  const normal = [row[1] * col[2] - row[2] * col[1], row[2] * col[0] - row[0] * col[2], row[0] * col[1] - row[1] * col[0]];
  const ordered = [...slices].sort((a, b) => dot(a.position, normal) - dot(b.position, normal) || (a.instanceNumber ?? 0) - (b.instanceNumber ?? 0));
  const n = ordered.length;
  if (n === 1) {
    const t = ordered[0].spacingBetweenSlices ?? ordered[0].sliceThickness ?? 1;
    return { ordered, step: [normal[0] * t, normal[1] * t, normal[2] * t] };
  }
  const d = ordered.map((s) => dot(s.position, normal));
  const steps = d.slice(1).map((v, i) => v - d[i]);
  const dup = steps.filter((s) => s < 1e-3).length;
  if (dup > 0) throw new DicomError('DUPLICATE_POSITION', where, `${dup} slice(s) share a position with another (several echoes, phases or time points in one series); export them as separate series`);
  const sorted = [...steps].sort((a, b) => a - b);
  const median = sorted[Math.floor(sorted.length / 2)];
  const worst = steps.reduce((w, s) => (Math.abs(s - median) > Math.abs(w - median) ? s : w), median);
  if (Math.abs(worst - median) > Math.max(1e-3, 0.01 * median)) {
    throw new DicomError('NON_UNIFORM_SPACING', where, `slice spacing varies from ${sorted[0].toFixed(4)} to ${sorted[sorted.length - 1].toFixed(4)} mm (median ${median.toFixed(4)}); missing slices or a variable-thickness series cannot be one volume without resampling`);
  }
  const first = ordered[0].position;
  const last = ordered[n - 1].position;
  const step: [number, number, number] = [0, 1, 2].map((i) => (last[i] - first[i]) / (n - 1)) as [number, number, number];
  const along = dot(step, normal);
  const across = Math.hypot(step[0] - along * normal[0], step[1] - along * normal[1], step[2] - along * normal[2]);
  if (across > 1e-3 * Math.abs(along)) {
    const deg = (Math.atan2(across, Math.abs(along)) * 180) / Math.PI;
    throw new DicomError('GANTRY_TILT', where, `slices are stacked at ${deg.toFixed(3)} degrees from their normal (gantry tilt); the voxels would be sheared: reslice it (e.g. dcm2niix, which corrects tilt) first`);
  }
  return { ordered, step };
}

/** One series as a volume in canonical RAS order, with the geometry to write predictions back as NIfTI. */
export function assembleDicomSeries(where: string, slices: readonly DicomSlice[], opts: DicomReadOptions = {}): NiftiVolume {
  if (slices.length === 0) throw new DicomError('NO_SERIES', where, 'no image slices');
  checkConsistent(where, slices);
  const { ordered, step } = sliceGeometry(where, slices);
  const { rows, cols, orientation: o, pixelSpacing: ps } = ordered[0];
  const n = ordered.length;
  const maxBytes = opts.maxBytes ?? DEFAULT_MAX_NIFTI_BYTES;
  if (rows * cols * n * 4 > maxBytes) throw new DicomError('TOO_LARGE', where, `${cols}x${rows}x${n} voxels need ${rows * cols * n * 4} bytes as float32, over the limit of ${maxBytes}`);
  const p = ordered[0].position;
  // Voxel (i = column, j = row, k = slice) -> LPS: P + i*ps[1]*rowDir + j*ps[0]*colDir + k*step; RAS negates x and y.
  const lps = [
    [o[0] * ps[1], o[3] * ps[0], step[0], p[0]],
    [o[1] * ps[1], o[4] * ps[0], step[1], p[1]],
    [o[2] * ps[1], o[5] * ps[0], step[2], p[2]],
  ];
  const affine: Mat44 = [lps[0].map((v) => -v), lps[1].map((v) => -v), lps[2].slice(), [0, 0, 0, 1]];
  const data = new Float32Array(rows * cols * n);
  ordered.forEach((s, k) => data.set(s.values, k * rows * cols));
  // Through the NIfTI decoder (NIfTI-2: float64 affine), so canonical order and geometry are the NIfTI ones.
  const like = geometryFromAffine([cols, rows, n], affine);
  const bytes = encodeNifti(where, data, like, { voxelOrder: 'source', datatype: 'float32', version: 2 });
  return decodeNifti(where, bytes, { maxBytes: Math.max(maxBytes, data.length * 4) });
}

/**
 * The one series of a folder as a volume (a dataset case given as a DICOM folder).
 *
 * @example
 * const ct = await readDicomSeries('/pacs-export/case_007'); // NiftiVolume, canonical RAS
 */
export async function readDicomSeries(dir: string, opts: DicomReadOptions = {}): Promise<NiftiVolume> {
  const scan = await scanDicomFolder(dir, opts);
  if (scan.series.length === 0) {
    const why = scan.skipped.length > 0 ? `; ${scan.skipped.length} file(s) skipped, the first: ${scan.skipped[0].message} [${scan.skipped[0].code}]` : '';
    throw new DicomError('NO_SERIES', dir, `no DICOM image series found${why}`);
  }
  if (scan.series.length > 1) throw new DicomError('SEVERAL_SERIES', dir, `${scan.series.length} series (${scan.series.map((s) => `${s.slices.length} slices`).join(', ')}); a case folder must hold one: import them with fedsfda data import-dicom`);
  return assembleDicomSeries(dir, scan.series[0].slices, opts);
}

/** One series given by its files (listDicomSeries) as a volume; `where` names it in errors. */
export async function readDicomFiles(where: string, files: readonly string[], opts: DicomReadOptions = {}): Promise<NiftiVolume> {
  const slices: DicomSlice[] = [];
  for (const f of files) slices.push(await readDicomSlice(f));
  return assembleDicomSeries(where, slices, opts);
}
