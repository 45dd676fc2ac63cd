/** `fedsfda data inspect`: header facts and value statistics of one NIfTI file. */
import { readNifti, readNiftiHeader, type ReadNiftiOptions } from '../nifti/read-nifti.ts';
import type { Mat44 } from '../nifti/affine.ts';

export interface NiftiInspection {
  readonly file: string;
  readonly version: 1 | 2;
  readonly datatype: string;
  readonly littleEndian: boolean;
  /** As stored: dim[1..dim[0]]. */
  readonly rawDims: readonly number[];
  readonly numVolumes: number;
  /** Which volume the statistics describe (4D files: `volumeIndex`, default 0). */
  readonly volumeIndex: number;
  /** In-memory (canonical RAS) dims and spacing (mm). */
  readonly dims: readonly number[];
  readonly spacing: readonly number[];
  /** Stored voxel axis codes (e.g. LPS); in memory fedsfda always uses RAS. */
  readonly orientation: string;
  readonly affineSource: 'sform' | 'qform' | 'pixdim';
  readonly qformCode: number;
  readonly sformCode: number;
  readonly sclSlope: number;
  readonly sclInter: number;
  readonly sourceAffine: Mat44;
  readonly intensity: { readonly min: number; readonly max: number; readonly mean: number; readonly std: number; readonly nonFinite: number };
  /** Distinct values with counts when the volume looks like a label map (integers, at most 128 distinct values). */
  readonly labelValues?: ReadonlyArray<{ readonly value: number; readonly count: number }>;
}

export async function inspectNifti(file: string, opts: ReadNiftiOptions = {}): Promise<NiftiInspection> {
  const h = await readNiftiHeader(file, opts);
  const volumeIndex = opts.volumeIndex ?? 0;
  // Inspection must work on files training would refuse: NaN/Inf are counted, not fatal.
  const v = await readNifti(file, { ...opts, volumeIndex: h.numVolumes > 1 ? volumeIndex : undefined, nonFinite: 'zero' });
  let min = Infinity;
  let max = -Infinity;
  let sum = 0;
  let ss = 0;
  const counts = new Map<number, number>();
  let labelLike = true;
  for (let i = 0; i < v.data.length; i++) {
    const x = v.data[i];
    if (x < min) min = x;
    if (x > max) max = x;
    sum += x;
    ss += x * x;
    if (labelLike) {
      if (!Number.isInteger(x)) labelLike = false;
      else {
        counts.set(x, (counts.get(x) ?? 0) + 1);
        if (counts.size > 128) labelLike = false;
      }
    }
  }
  const n = v.data.length;
  const mean = sum / n;
  const nonFinite = v.nonFiniteVoxels;
  return {
    file: v.file,
    version: v.version,
    datatype: v.datatype,
    littleEndian: v.littleEndian,
    rawDims: v.rawDims,
    numVolumes: v.numVolumes,
    volumeIndex: v.volumeIndex,
    dims: v.dims,
    spacing: v.spacing,
    orientation: v.orientation,
    affineSource: v.affineSource,
    qformCode: v.geometry.qformCode,
    sformCode: v.geometry.sformCode,
    sclSlope: v.sclSlope,
    sclInter: v.sclInter,
    sourceAffine: v.sourceAffine,
    intensity: { min, max, mean, std: Math.sqrt(Math.max(0, ss / n - mean * mean)), nonFinite },
    ...(labelLike ? { labelValues: [...counts.entries()].sort((a, b) => a[0] - b[0]).map(([value, count]) => ({ value, count })) } : {}),
  };
}

export function formatInspection(i: NiftiInspection): string {
  const f = (x: number): string => (Number.isInteger(x) ? String(x) : x.toPrecision(6));
  const lines = [
    `file:         ${i.file}`,
    `format:       NIfTI-${i.version}, ${i.datatype}, ${i.littleEndian ? 'little' : 'big'}-endian`,
    `dims:         ${i.rawDims.join(' x ')} as stored${i.numVolumes > 1 ? ` (${i.numVolumes} volumes; statistics of volume ${i.volumeIndex})` : ''}`,
    `canonical:    ${i.dims.join(' x ')} voxels, RAS`,
    `spacing:      ${i.spacing.map(f).join(' x ')} mm`,
    `orientation:  ${i.orientation} (from ${i.affineSource}; qform_code ${i.qformCode}, sform_code ${i.sformCode})`,
    `scaling:      scl_slope ${f(i.sclSlope)}, scl_inter ${f(i.sclInter)}`,
    `affine:       ${i.sourceAffine.slice(0, 3).map((r) => `[${r.map(f).join(', ')}]`).join(' ')}`,
    `intensity:    min ${f(i.intensity.min)}, max ${f(i.intensity.max)}, mean ${f(i.intensity.mean)}, std ${f(i.intensity.std)}${i.intensity.nonFinite ? `, ${i.intensity.nonFinite} NaN/Inf voxel(s) (counted as 0 above)` : ''}`,
  ];
  if (i.labelValues) lines.push(`label values: ${i.labelValues.length} distinct: ${i.labelValues.slice(0, 40).map((l) => `${l.value} (${l.count})`).join(', ')}${i.labelValues.length > 40 ? ', ...' : ''}`);
  else lines.push('label values: not a label map (non-integer values or more than 128 distinct values)');
  return lines.join('\n');
}
