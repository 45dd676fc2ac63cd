/**
 * Which voxel-to-world transform a NIfTI header means, decided exactly as nibabel 5.0 decides it
 * (`Nifti1Header.get_best_affine` after the load-time `check_fix`), so that a volume lands on the same voxels
 * and the same world coordinates in fedsfda as in nibabel / SPM / FSL-based pipelines:
 * - an xform code outside 0..5 counts as 0 (unknown);
 * - pixdim[1..3]: 0 is taken as 1, negative as its absolute value; qfac (pixdim[0]) other than -1 or 1 is 1;
 * - sform if sform_code != 0, else qform (quaternion, nibabel's `fillpositive` + `quat2mat`) if qform_code != 0,
 *   else the Analyze-style base affine: x flipped (radiological), origin at the centre of the volume
 *   (nibabel `shape_zoom_affine(shape, zooms, x_flip=True)`).
 */
import { isUsableAffine, type Mat44 } from './affine.ts';
import { NiftiError } from './nifti-error.ts';

export type AffineSource = 'sform' | 'qform' | 'pixdim';

export interface XformFields {
  /** dim[1..dim[0]] as stored. */
  readonly rawDims: readonly number[];
  /** pixdim[0..7] as stored. */
  readonly pixdimRaw: readonly number[];
  readonly qformCode: number;
  readonly sformCode: number;
  readonly quatern: { readonly b: number; readonly c: number; readonly d: number; readonly qx: number; readonly qy: number; readonly qz: number };
  /** sform rows (3 x 4). */
  readonly srow: readonly (readonly number[])[];
  /** NIfTI-1 stores the quaternion as float32, NIfTI-2 as float64 (sets nibabel's w^2 tolerance). */
  readonly version: 1 | 2;
}

export interface BestAffine {
  readonly affine: Mat44;
  readonly source: AffineSource;
  /** pixdim[1..3] after nibabel's fix (0 -> 1, negative -> absolute value). */
  readonly pixdim: [number, number, number];
  readonly qfac: 1 | -1;
  /** Codes after nibabel's fix (unknown codes -> 0). */
  readonly qformCode: number;
  readonly sformCode: number;
}

/** NIFTI_XFORM_UNKNOWN .. NIFTI_XFORM_TEMPLATE_OTHER (nifti1.h, 2016 update). */
const VALID_XFORM_CODES = new Set([0, 1, 2, 3, 4, 5]);

/** Largest float32 / float64 rounding step, times 3: how far below 0 nibabel lets w^2 = 1 - |bcd|^2 go. */
const W2_TOLERANCE = { 1: 3 * 2 ** -23, 2: 3 * 2 ** -52 } as const;

/** nibabel quaternions.fillpositive + quat2mat: the rotation of a qform quaternion (b, c, d), w >= 0 filled in. */
export function quaternionRotation(file: string, b: number, c: number, d: number, version: 1 | 2): number[][] {
  const w2 = 1 - (b * b + c * c + d * d);
  if (w2 < -W2_TOLERANCE[version]) {
    throw new NiftiError('BAD_HEADER', file, `qform quaternion (b, c, d) = (${b}, ${c}, ${d}) has norm above 1 (w^2 = ${w2.toExponential(3)}): not a rotation`);
  }
  const w = w2 < 0 ? 0 : Math.sqrt(w2);
  const nq = w * w + b * b + c * c + d * d;
  if (nq < Number.EPSILON) {
    return [
      [1, 0, 0],
      [0, 1, 0],
      [0, 0, 1],
    ];
  }
  const s = 2 / nq;
  const [X, Y, Z] = [b * s, c * s, d * s];
  const [wX, wY, wZ] = [w * X, w * Y, w * Z];
  const [xX, xY, xZ] = [b * X, b * Y, b * Z];
  const [yY, yZ, zZ] = [c * Y, c * Z, d * Z];
  return [
    [1 - (yY + zZ), xY - wZ, xZ + wY],
    [xY + wZ, 1 - (xX + zZ), yZ - wX],
    [xZ - wY, yZ + wX, 1 - (xX + yY)],
  ];
}

/** nibabel volumeutils.shape_zoom_affine(shape, zooms, x_flip=True) for the first three axes. */
function baseAffine(rawDims: readonly number[], zooms: readonly number[]): Mat44 {
  const shape = [0, 1, 2].map((i) => rawDims[i] ?? 1);
  const z = [0, 1, 2].map((i) => (i < rawDims.length ? zooms[i] : 1));
  z[0] = -z[0];
  return [
    [z[0], 0, 0, (-(shape[0] - 1) / 2) * z[0]],
    [0, z[1], 0, (-(shape[1] - 1) / 2) * z[1]],
    [0, 0, z[2], (-(shape[2] - 1) / 2) * z[2]],
    [0, 0, 0, 1],
  ];
}

/** The transform nibabel's `img.affine` would be for these header fields (before any unit conversion). */
export function bestAffine(file: string, h: XformFields): BestAffine {
  const pixdim = [1, 2, 3].map((i) => {
    const p = h.pixdimRaw[i];
    return p === 0 ? 1 : Math.abs(p);
  }) as [number, number, number];
  if (!pixdim.every((p) => Number.isFinite(p))) throw new NiftiError('BAD_HEADER', file, `pixdim[1..3] ${JSON.stringify(h.pixdimRaw.slice(1, 4))} are not finite voxel sizes`);
  const qfac: 1 | -1 = h.pixdimRaw[0] === -1 ? -1 : 1;
  const qformCode = VALID_XFORM_CODES.has(h.qformCode) ? h.qformCode : 0;
  const sformCode = VALID_XFORM_CODES.has(h.sformCode) ? h.sformCode : 0;
  let affine: Mat44;
  let source: AffineSource;
  if (sformCode !== 0) {
    affine = [h.srow[0].slice(), h.srow[1].slice(), h.srow[2].slice(), [0, 0, 0, 1]];
    source = 'sform';
  } else if (qformCode !== 0) {
    const q = h.quatern;
    const R = quaternionRotation(file, q.b, q.c, q.d, h.version);
    const vox = [pixdim[0], pixdim[1], pixdim[2] * qfac];
    affine = [
      [R[0][0] * vox[0], R[0][1] * vox[1], R[0][2] * vox[2], q.qx],
      [R[1][0] * vox[0], R[1][1] * vox[1], R[1][2] * vox[2], q.qy],
      [R[2][0] * vox[0], R[2][1] * vox[1], R[2][2] * vox[2], q.qz],
      [0, 0, 0, 1],
    ];
    source = 'qform';
  } else {
    affine = baseAffine(h.rawDims, pixdim);
    source = 'pixdim';
  }
  if (!isUsableAffine(affine)) {
    const rows = affine.slice(0, 3).map((r) => `[${r.join(', ')}]`).join(' ');
    throw new NiftiError('BAD_HEADER', file, `the ${source} (${rows}) is not an invertible voxel-to-world transform, so the volume has no orientation`);
  }
  return { affine, source, pixdim, qfac, qformCode, sformCode };
}
