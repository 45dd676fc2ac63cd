/**
 * Header parsing and validation. nifti-reader-js decodes the fields; this file checks the magic itself
 * (before the library sees the bytes), validates every field a later allocation depends on, and derives
 * the geometry: the source affine (sform preferred, then qform, then pixdim, as nibabel and ITK do),
 * the reorientation to canonical RAS+, spacing in millimetres.
 */
import { readHeader as libReadHeader, NIFTI1, NIFTI2 } from 'nifti-reader-js';
import { mat44ToQuatern, type Mat44 } from './affine.ts';
import { bestAffine } from './best-affine.ts';
import { datatypeByCode, describeDatatypeCode, SUPPORTED_DATATYPE_NAMES, type NiftiDatatype, type NiftiDatatypeName } from './datatypes.ts';
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
  /** A .hdr/.img pair (magic ni1/ni2): the voxels are in the companion .img file. */
  readonly pair: boolean;
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

/**
 * Identifies the format from the first bytes; throws BAD_MAGIC with the reason otherwise.
 * `pair`: a header of a .hdr/.img pair (magic `ni1` / `ni2`), whose voxels are in the companion .img file.
 */
export function detectVersion(file: string, b: Uint8Array): { version: 1 | 2; littleEndian: boolean; pair: boolean } {
  if (b.length < NIFTI1_HEADER_BYTES) {
    const looksLikeHeader = b.length >= 4 && [true, false].some((le) => [NIFTI1_HEADER_BYTES, NIFTI2_HEADER_BYTES].includes(int32At(b, 0, le)));
    if (!looksLikeHeader) throw new NiftiError('BAD_MAGIC', file, `not a NIfTI file (${b.length} bytes, no NIfTI header)`);
    throw new NiftiError('TRUNCATED', file, `only ${b.length} bytes, shorter than a NIfTI header`);
  }
  for (const le of [true, false]) {
    const size = int32At(b, 0, le);
    if (size === NIFTI1_HEADER_BYTES) {
      const m = String.fromCharCode(b[344], b[345], b[346]);
      if ((m === 'n+1' || m === 'ni1') && b[347] === 0) return { version: 1, littleEndian: le, pair: m === 'ni1' };
      throw new NiftiError('BAD_MAGIC', file, `sizeof_hdr is 348 but the magic is neither "n+1" nor "ni1" (got ${JSON.stringify(m)}; Analyze 7.5 is not supported)`);
    }
    if (size === NIFTI2_HEADER_BYTES) {
      if (b.length < NIFTI2_HEADER_BYTES) throw new NiftiError('TRUNCATED', file, `only ${b.length} bytes, shorter than a NIfTI-2 header (540)`);
      const tail = [0, 0x0d, 0x0a, 0x1a, 0x0a];
      const m = String.fromCharCode(b[4], b[5], b[6]);
      if ((m === 'n+2' || m === 'ni2') && tail.every((v, i) => b[7 + i] === v)) return { version: 2, littleEndian: le, pair: m === 'ni2' };
      throw new NiftiError('BAD_MAGIC', file, 'sizeof_hdr is 540 but the NIfTI-2 magic "n+2\\0\\r\\n\\032\\n" (or "ni2..." for a pair) is missing');
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

/** Scale factors as nibabel reads them: slope 0 or non-finite means "no scaling"; a valid slope needs a finite intercept. */
function slopeInter(file: string, slope: number, inter: number): { slope: number; inter: number } {
  if (slope === 0 || !Number.isFinite(slope)) return { slope: 1, inter: 0 };
  if (!Number.isFinite(inter)) throw new NiftiError('BAD_HEADER', file, `scl_slope ${slope} is valid but scl_inter is ${inter}: the voxel values cannot be computed`);
  return { slope, inter };
}

/**
 * Parses and validates the header bytes (at least the first 348/540 bytes of the decompressed file).
 * Never allocates anything proportional to the dims. The rules follow nibabel 5.0's reading of the standard
 * (see best-affine.ts); where nibabel tolerates a redundant field (bitpix), so do we.
 */
export function parseNiftiHeader(file: string, headerBytes: Uint8Array): NiftiHeaderInfo & { readonly dt: NiftiDatatype } {
  const { version, littleEndian, pair } = detectVersion(file, headerBytes);
  const size = version === 1 ? NIFTI1_HEADER_BYTES : NIFTI2_HEADER_BYTES;
  // Hand the library exactly the fixed header, so it does not walk extensions in a possibly hostile buffer.
  const ab = headerBytes.slice(0, size).buffer;
  let h: NIFTI1 | NIFTI2;
  try {
    h = libReadHeader(ab, true);
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
    throw new NiftiError('UNSUPPORTED_DATATYPE', file, `datatype ${describeDatatypeCode(h.datatypeCode)} (code ${h.datatypeCode}) is not supported; use ${SUPPORTED_DATATYPE_NAMES}`);
  }
  // A single file's voxels start after the header and its 4-byte extension flag; a pair's .img may start at 0.
  const voxOffset = h.vox_offset;
  const minOffset = pair ? 0 : size + 4;
  if (!Number.isSafeInteger(voxOffset) || voxOffset < minOffset) {
    throw new NiftiError('BAD_HEADER', file, `vox_offset ${voxOffset} is ${Number.isSafeInteger(voxOffset) ? `below ${minOffset}, inside the header` : 'not an integer'}`);
  }
  const pixdimRaw = h.pixDims.slice(0, 8);
  const srow = readSrow(headerBytes, version, littleEndian);
  const quatern = { b: h.quatern_b, c: h.quatern_c, d: h.quatern_d, qx: h.qoffset_x, qy: h.qoffset_y, qz: h.qoffset_z };
  const best = bestAffine(file, { rawDims, pixdimRaw, qformCode: h.qform_code, sformCode: h.sform_code, quatern, srow, version });
  const sourceAffine = scaleAffine(best.affine, unitScale(h.xyzt_units));
  const reorientation = computeReorientation(sourceAffine, sourceDims);
  const colNorm = [0, 1, 2].map((i) => Math.hypot(sourceAffine[0][i], sourceAffine[1][i], sourceAffine[2][i]));
  const { slope, inter } = slopeInter(file, h.scl_slope, h.scl_inter);
  return {
    file,
    version,
    pair,
    dt,
    datatype: dt.name,
    littleEndian,
    rawDims,
    numVolumes,
    voxOffset,
    sclSlope: slope,
    sclInter: inter,
    affineSource: best.source,
    sourceAffine,
    orientation: orientationCode(reorientation),
    dims: canonicalDims(reorientation),
    spacing: toCanonicalTriple(reorientation, colNorm),
    affine: canonicalAffine(reorientation, sourceAffine),
    description: h.description ?? '',
    reorientation,
    geometry: { sourceDims, pixdim: best.pixdim, qfac: best.qfac, qformCode: best.qformCode, sformCode: best.sformCode, quatern, srow, xyztUnits: h.xyzt_units },
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
