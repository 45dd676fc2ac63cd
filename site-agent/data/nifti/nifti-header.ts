/**
 * Header parsing and validation. nifti-reader-js decodes the fields; this file checks the magic itself
 * (before the library sees the bytes), validates every field a later allocation depends on, and derives
 * the geometry: the source affine (sform preferred, then qform, then pixdim, as nibabel and ITK do),
 * the reorientation to canonical RAS+, spacing in millimetres.
 */
import { readHeader as libReadHeader, NIFTI1, NIFTI2 } from 'nifti-reader-js';
import { isUsableAffine, mat44ToQuatern, quaternToMat44, type Mat44 } from './affine.ts';
import { datatypeByCode, describeDatatypeCode, type NiftiDatatype, type NiftiDatatypeName } from './datatypes.ts';
import { NiftiError } from './nifti-error.ts';
import { canonicalAffine, canonicalDims, computeReorientation, orientationCode, toCanonicalTriple, type Dims3, type Reorientation } from './orientation.ts';

/** The on-disk geometry, kept so that a written label map reproduces the source header's placement. */
export interface NiftiGeometry {
  /** On-disk dims (x, y, z). */
  readonly sourceDims: Dims3;
  /** On-disk voxel sizes in the file's spatial units. */
  readonly pixdim: Dims3;
  readonly qfac: 1 | -1;
  readonly qformCode: number;
  readonly sformCode: number;
  readonly quatern: { readonly b: number; readonly c: number; readonly d: number; readonly qx: number; readonly qy: number; readonly qz: number };
  /** sform rows (3 x 4). */
  readonly srow: readonly (readonly number[])[];
  /** xyzt_units byte (2 = mm). */
  readonly xyztUnits: number;
}

/** What a writer needs to place canonical-order voxels back into a source-like file. */
export interface NiftiLike {
  readonly geometry: NiftiGeometry;
  readonly reorientation: Reorientation;
}

export interface NiftiHeaderInfo extends NiftiLike {
  readonly file: string;
  readonly version: 1 | 2;
  readonly datatype: NiftiDatatypeName;
  readonly littleEndian: boolean;
  /** dim[1..dim[0]] as stored. */
  readonly rawDims: readonly number[];
  /** Number of 3D volumes (product of dims 4..7). */
  readonly numVolumes: number;
  readonly voxOffset: number;
  readonly sclSlope: number;
  readonly sclInter: number;
  /** Which field defined the orientation. */
  readonly affineSource: 'sform' | 'qform' | 'pixdim';
  /** Source voxel -> world (RAS+ mm). */
  readonly sourceAffine: Mat44;
  /** Axis codes of the stored voxel order, e.g. `LPS`; the in-memory order is always `RAS`. */
  readonly orientation: string;
  /** Canonical (RAS) dims of the in-memory volume. */
  readonly dims: Dims3;
  /** Canonical voxel spacing in mm. */
  readonly spacing: Dims3;
  /** Canonical voxel -> world (RAS+ mm). */
  readonly affine: Mat44;
  readonly description: string;
}

export const NIFTI1_HEADER_BYTES = 348;
export const NIFTI2_HEADER_BYTES = 540;

function int32At(b: Uint8Array, off: number, le: boolean): number {
  return new DataView(b.buffer, b.byteOffset, b.byteLength).getInt32(off, le);
}

/** Identifies the format from the first bytes; throws BAD_MAGIC with the reason otherwise. */
export function detectVersion(file: string, b: Uint8Array): { version: 1 | 2; littleEndian: boolean } {
  if (b.length < NIFTI1_HEADER_BYTES) {
    const looksLikeHeader = b.length >= 4 && [true, false].some((le) => [NIFTI1_HEADER_BYTES, NIFTI2_HEADER_BYTES].includes(int32At(b, 0, le)));
    if (!looksLikeHeader) throw new NiftiError('BAD_MAGIC', file, `not a NIfTI file (${b.length} bytes, no NIfTI header)`);
    throw new NiftiError('TRUNCATED', file, `only ${b.length} bytes, shorter than a NIfTI header`);
  }
  for (const le of [true, false]) {
    const size = int32At(b, 0, le);
    if (size === NIFTI1_HEADER_BYTES) {
      const m = String.fromCharCode(b[344], b[345], b[346]);
      if (m === 'n+1' && b[347] === 0) return { version: 1, littleEndian: le };
      if (m === 'ni1') throw new NiftiError('BAD_MAGIC', file, 'a .hdr/.img pair header; convert it to a single .nii file');
      throw new NiftiError('BAD_MAGIC', file, `sizeof_hdr is 348 but the magic is not "n+1" (got ${JSON.stringify(m)}; Analyze 7.5 is not supported)`);
    }
    if (size === NIFTI2_HEADER_BYTES) {
      if (b.length < NIFTI2_HEADER_BYTES) throw new NiftiError('TRUNCATED', file, `only ${b.length} bytes, shorter than a NIfTI-2 header (540)`);
      const magic = [0x6e, 0x2b, 0x32, 0, 0x0d, 0x0a, 0x1a, 0x0a];
      if (magic.every((v, i) => b[4 + i] === v)) return { version: 2, littleEndian: le };
      throw new NiftiError('BAD_MAGIC', file, 'sizeof_hdr is 540 but the NIfTI-2 magic "n+2\\0\\r\\n\\032\\n" is missing');
    }
  }
  throw new NiftiError('BAD_MAGIC', file, 'not a NIfTI file (sizeof_hdr is neither 348 nor 540)');
}

function readSrow(b: Uint8Array, version: 1 | 2, le: boolean): number[][] {
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const rows: number[][] = [];
  for (let r = 0; r < 3; r++) {
    const row: number[] = [];
    for (let c = 0; c < 4; c++) row.push(version === 1 ? dv.getFloat32(280 + (r * 4 + c) * 4, le) : dv.getFloat64(400 + (r * 4 + c) * 8, le));
    rows.push(row);
  }
  return rows;
}

/** Millimetres per file spatial unit (xyzt_units & 7: 1 metre, 2 mm, 3 micron; unknown is taken as mm). */
function unitScale(xyztUnits: number): number {
  switch (xyztUnits & 7) {
    case 1:
      return 1000;
    case 3:
      return 0.001;
    default:
      return 1;
  }
}

function scaleAffine(a: Mat44, s: number): Mat44 {
  if (s === 1) return a;
  return a.map((row, i) => (i < 3 ? row.map((v) => v * s) : row.slice()));
}

/**
 * Parses and validates the header bytes (at least the first 348/540 bytes of the decompressed file).
 * Never allocates anything proportional to the dims.
 */
export function parseNiftiHeader(file: string, headerBytes: Uint8Array): NiftiHeaderInfo & { readonly dt: NiftiDatatype } {
  const { version, littleEndian } = detectVersion(file, headerBytes);
  const size = version === 1 ? NIFTI1_HEADER_BYTES : NIFTI2_HEADER_BYTES;
  // Hand the library exactly the fixed header, so it does not walk extensions in a possibly hostile buffer.
  const ab = headerBytes.slice(0, size).buffer;
  let h: NIFTI1 | NIFTI2;
  try {
    h = libReadHeader(ab);
  } catch (e) {
    throw new NiftiError('BAD_HEADER', file, `header could not be parsed (${e instanceof Error ? e.message : String(e)})`);
  }
  const ndim = h.dims[0];
  if (!Number.isInteger(ndim) || ndim < 1 || ndim > 7) throw new NiftiError('BAD_HEADER', file, `dim[0] must be 1..7, got ${ndim}`);
  const rawDims: number[] = [];
  for (let i = 1; i <= ndim; i++) {
    const d = h.dims[i];
    if (!Number.isSafeInteger(d) || d < 1) throw new NiftiError('BAD_HEADER', file, `dim[${i}] must be a positive integer, got ${d}`);
    rawDims.push(d);
  }
  const sourceDims: Dims3 = [rawDims[0] ?? 1, rawDims[1] ?? 1, rawDims[2] ?? 1];
  let numVolumes = 1;
  for (let i = 3; i < rawDims.length; i++) numVolumes *= rawDims[i];
  const dt = datatypeByCode(h.datatypeCode);
  if (dt === undefined) {
    throw new NiftiError('UNSUPPORTED_DATATYPE', file, `datatype ${describeDatatypeCode(h.datatypeCode)} (code ${h.datatypeCode}) is not supported; use uint8, int8, int16, uint16, int32, float32 or float64`);
  }
  if (h.numBitsPerVoxel !== dt.bytes * 8) throw new NiftiError('BAD_HEADER', file, `bitpix ${h.numBitsPerVoxel} does not match datatype ${dt.name}`);
  const voxOffset = h.vox_offset;
  if (!Number.isSafeInteger(voxOffset) || voxOffset < size) throw new NiftiError('BAD_HEADER', file, `vox_offset ${voxOffset} is before the end of the header (${size})`);
  const pixdimRaw: Dims3 = [h.pixDims[1], h.pixDims[2], h.pixDims[3]];
  const pixdim: Dims3 = pixdimRaw.map((p, i) => (i < ndim ? p : p || 1)) as Dims3;
  const qfac: 1 | -1 = h.pixDims[0] < 0 ? -1 : 1;
  const srow = readSrow(headerBytes, version, littleEndian);
  const quatern = { b: h.quatern_b, c: h.quatern_c, d: h.quatern_d, qx: h.qoffset_x, qy: h.qoffset_y, qz: h.qoffset_z };
  const units = unitScale(h.xyzt_units);
  let affineSource: 'sform' | 'qform' | 'pixdim' = 'pixdim';
  let aff: Mat44 | undefined;
  if (h.sform_code > 0) {
    const s: Mat44 = [srow[0].slice(), srow[1].slice(), srow[2].slice(), [0, 0, 0, 1]];
    if (isUsableAffine(s)) {
      aff = s;
      affineSource = 'sform';
    }
  }
  if (aff === undefined && h.qform_code > 0 && pixdim.every((p) => Number.isFinite(p) && p > 0)) {
    const q = quaternToMat44({ ...quatern, dx: pixdim[0], dy: pixdim[1], dz: pixdim[2], qfac });
    if (isUsableAffine(q)) {
      aff = q;
      affineSource = 'qform';
    }
  }
  if (aff === undefined) {
    // NIfTI-1 "METHOD 0": no orientation, voxel sizes only; taken as RAS (the standard's literal reading).
    if (!pixdim.every((p) => Number.isFinite(p) && p > 0)) {
      throw new NiftiError('BAD_HEADER', file, `no usable sform/qform and pixdim ${JSON.stringify(pixdimRaw)} are not positive voxel sizes`);
    }
    aff = [
      [pixdim[0], 0, 0, 0],
      [0, pixdim[1], 0, 0],
      [0, 0, pixdim[2], 0],
      [0, 0, 0, 1],
    ];
  }
  const sourceAffine = scaleAffine(aff, units);
  const reorientation = computeReorientation(sourceAffine, sourceDims);
  const colNorm = [0, 1, 2].map((i) => Math.hypot(sourceAffine[0][i], sourceAffine[1][i], sourceAffine[2][i]));
  const slope = Number.isFinite(h.scl_slope) && h.scl_slope !== 0 ? h.scl_slope : 1;
  const inter = Number.isFinite(h.scl_inter) && h.scl_slope !== 0 && Number.isFinite(h.scl_slope) ? h.scl_inter : 0;
  return {
    file,
    version,
    dt,
    datatype: dt.name,
    littleEndian,
    rawDims,
    numVolumes,
    voxOffset,
    sclSlope: slope,
    sclInter: inter,
    affineSource,
    sourceAffine,
    orientation: orientationCode(reorientation),
    dims: canonicalDims(reorientation),
    spacing: toCanonicalTriple(reorientation, colNorm),
    affine: canonicalAffine(reorientation, sourceAffine),
    description: h.description ?? '',
    reorientation,
    geometry: { sourceDims, pixdim, qfac, qformCode: h.qform_code, sformCode: h.sform_code, quatern, srow, xyztUnits: h.xyzt_units },
  };
}

/**
 * A geometry for a brand-new volume whose on-disk voxels are `dims` with voxel->world `affine`
 * (both qform and sform are written from it, code 2 = aligned anatomical).
 */
export function geometryFromAffine(dims: Dims3, affine: Mat44): NiftiLike {
  const q = mat44ToQuatern(affine);
  return {
    geometry: {
      sourceDims: [...dims] as Dims3,
      pixdim: [q.dx, q.dy, q.dz],
      qfac: q.qfac,
      qformCode: 2,
      sformCode: 2,
      quatern: { b: q.b, c: q.c, d: q.d, qx: q.qx, qy: q.qy, qz: q.qz },
      srow: [affine[0].slice(), affine[1].slice(), affine[2].slice()],
      xyztUnits: 2,
    },
    reorientation: computeReorientation(affine, dims),
  };
}

/** A RAS-aligned geometry with the given spacing (origin at voxel 0). */
export function geometryFromSpacing(dims: Dims3, spacing: Dims3): NiftiLike {
  return geometryFromAffine(dims, [
    [spacing[0], 0, 0, 0],
    [0, spacing[1], 0, 0],
    [0, 0, spacing[2], 0],
    [0, 0, 0, 1],
  ]);
}
