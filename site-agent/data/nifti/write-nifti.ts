/**
 * Writing volumes (predicted label maps, images) as NIfTI-1 or NIfTI-2 with a source image's geometry:
 * same on-disk dims, pixdim, qform and sform, and the source voxel order (the canonical RAS data is
 * permuted/flipped back), so ITK-SNAP / 3D Slicer overlay the output on the input.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { gzipSync } from 'fflate';
import { encodeValues, NIFTI_DATATYPES, swapBytes, type NiftiDatatypeName } from './datatypes.ts';
import { NiftiError } from './nifti-error.ts';
import type { NiftiLike } from './nifti-header.ts';
import { reorientFromCanonical } from './orientation.ts';

/** NIFTI_INTENT_LABEL (nifti1.h): voxel values are label indices. */
const INTENT_LABEL = 1002;

export interface WriteNiftiOptions {
  /** Stored datatype; default uint8 for a Uint8Array input, float32 otherwise. */
  datatype?: NiftiDatatypeName;
  /** Stored value = round((value - sclInter) / sclSlope) for integer types; written into the header. */
  sclSlope?: number;
  sclInter?: number;
  /** 1 or 2; default 1, or 2 when a dimension exceeds NIfTI-1's int16 limit (32767). */
  version?: 1 | 2;
  /** Write big-endian (for interoperability tests); default little-endian. */
  bigEndian?: boolean;
  /** Gzip the output; default: when the path ends in `.gz`. */
  gzip?: boolean;
  /** `canonical` (default): `data` is in canonical RAS order; `source`: already in the on-disk order. */
  voxelOrder?: 'canonical' | 'source';
  /** Mark the file as a label map (intent_code NIFTI_INTENT_LABEL). */
  label?: boolean;
  description?: string;
}

function putString(u8: Uint8Array, off: number, len: number, s: string): void {
  for (let i = 0; i < len - 1 && i < s.length; i++) u8[off + i] = s.charCodeAt(i) & 0x7f;
}

/** Encodes a volume as NIfTI bytes (uncompressed unless opts.gzip). `file` names it in errors. */
export function encodeNifti(file: string, data: ArrayLike<number>, like: NiftiLike, opts: WriteNiftiOptions = {}): Uint8Array {
  const g = like.geometry;
  const [X, Y, Z] = g.sourceDims;
  const voxels = X * Y * Z;
  if (data.length !== voxels) throw new NiftiError('BAD_HEADER', file, `data has ${data.length} voxels, the geometry ${X}x${Y}x${Z} needs ${voxels}`);
  const dt = NIFTI_DATATYPES[opts.datatype ?? (data instanceof Uint8Array ? 'uint8' : 'float32')];
  if (dt === undefined) throw new NiftiError('UNSUPPORTED_DATATYPE', file, `cannot write datatype ${String(opts.datatype)}`);
  const slope = opts.sclSlope ?? 1;
  const inter = opts.sclInter ?? 0;
  if (!Number.isFinite(slope) || slope === 0 || !Number.isFinite(inter)) throw new NiftiError('BAD_HEADER', file, `scl_slope ${slope} / scl_inter ${inter} must be finite, slope non-zero`);
  const ordered = opts.voxelOrder === 'source' ? data : reorientFromCanonical(data, like.reorientation, new Float64Array(voxels));
  const stored = new Float64Array(voxels);
  for (let i = 0; i < voxels; i++) {
    let v = (ordered[i] - inter) / slope;
    if (dt.integer) {
      v = Math.round(v);
      if (!(v >= dt.min && v <= dt.max)) {
        throw new NiftiError('VALUE_OUT_OF_RANGE', file, `voxel ${i} value ${ordered[i]} does not fit ${dt.name} with slope ${slope}, inter ${inter}`);
      }
    }
    stored[i] = v;
  }
  const storedBytes = encodeValues(dt, stored);
  const le = !opts.bigEndian;
  if (!le) swapBytes(storedBytes, dt.bytes);
  const version = opts.version ?? (Math.max(X, Y, Z) > 32767 ? 2 : 1);
  if (version === 1 && Math.max(X, Y, Z) > 32767) throw new NiftiError('BAD_HEADER', file, `dims ${X}x${Y}x${Z} do not fit NIfTI-1 (max 32767); write version 2`);
  const voxOffset = version === 1 ? 352 : 544;
  const out = new Uint8Array(voxOffset + storedBytes.length);
  const dv = new DataView(out.buffer);
  const desc = opts.description ?? 'fedsfda';
  const pixdim = [g.qfac, g.pixdim[0], g.pixdim[1], g.pixdim[2], 1, 1, 1, 1];
  const dims = [3, X, Y, Z, 1, 1, 1, 1];
  const q = g.quatern;
  if (version === 1) {
    dv.setInt32(0, 348, le);
    out[38] = 'r'.charCodeAt(0);
    for (let i = 0; i < 8; i++) dv.setInt16(40 + 2 * i, dims[i], le);
    if (opts.label) dv.setInt16(68, INTENT_LABEL, le);
    dv.setInt16(70, dt.code, le);
    dv.setInt16(72, dt.bytes * 8, le);
    for (let i = 0; i < 8; i++) dv.setFloat32(76 + 4 * i, pixdim[i], le);
    dv.setFloat32(108, voxOffset, le);
    dv.setFloat32(112, slope, le);
    dv.setFloat32(116, inter, le);
    out[123] = g.xyztUnits & 0xff;
    putString(out, 148, 80, desc);
    dv.setInt16(252, g.qformCode, le);
    dv.setInt16(254, g.sformCode, le);
    [q.b, q.c, q.d, q.qx, q.qy, q.qz].forEach((v, i) => dv.setFloat32(256 + 4 * i, v, le));
    for (let r = 0; r < 3; r++) for (let c = 0; c < 4; c++) dv.setFloat32(280 + (r * 4 + c) * 4, g.srow[r][c], le);
    putString(out, 344, 4, 'n+1');
  } else {
    dv.setInt32(0, 540, le);
    [0x6e, 0x2b, 0x32, 0, 0x0d, 0x0a, 0x1a, 0x0a].forEach((v, i) => (out[4 + i] = v));
    dv.setInt16(12, dt.code, le);
    dv.setInt16(14, dt.bytes * 8, le);
    for (let i = 0; i < 8; i++) dv.setBigInt64(16 + 8 * i, BigInt(dims[i]), le);
    for (let i = 0; i < 8; i++) dv.setFloat64(104 + 8 * i, pixdim[i], le);
    dv.setBigInt64(168, BigInt(voxOffset), le);
    dv.setFloat64(176, slope, le);
    dv.setFloat64(184, inter, le);
    putString(out, 240, 80, desc);
    dv.setInt32(344, g.qformCode, le);
    dv.setInt32(348, g.sformCode, le);
    [q.b, q.c, q.d, q.qx, q.qy, q.qz].forEach((v, i) => dv.setFloat64(352 + 8 * i, v, le));
    for (let r = 0; r < 3; r++) for (let c = 0; c < 4; c++) dv.setFloat64(400 + (r * 4 + c) * 8, g.srow[r][c], le);
    dv.setInt32(500, g.xyztUnits, le);
    if (opts.label) dv.setInt32(504, INTENT_LABEL, le);
  }
  out.set(storedBytes, voxOffset);
  // mtime 0 keeps the output byte-identical across runs (reproducible datasets).
  return opts.gzip ? gzipSync(out, { level: 6, mtime: 0 }) : out;
}

/**
 * Writes `data` (canonical RAS order unless `voxelOrder: 'source'`) with the geometry of `like`
 * (typically the NiftiVolume the prediction was made from). Parent folders are created.
 *
 * @example
 * const img = await readNifti('case.nii.gz');
 * await writeNifti('pred.nii.gz', predictedLabels, img, { label: true });
 */
export async function writeNifti(file: string, data: ArrayLike<number>, like: NiftiLike, opts: WriteNiftiOptions = {}): Promise<void> {
  const bytes = encodeNifti(file, data, like, { ...opts, gzip: opts.gzip ?? file.endsWith('.gz') });
  try {
    await mkdir(dirname(file), { recursive: true });
    await writeFile(file, bytes);
  } catch (e) {
    throw new NiftiError('IO_ERROR', file, `cannot write (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
  }
}
