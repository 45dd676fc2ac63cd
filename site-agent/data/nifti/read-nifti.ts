/**
 * Reading NIfTI-1/2 volumes (.nii, .nii.gz) into canonical RAS+ float32 arrays.
 * Every failure is a NiftiError naming the file; sizes promised by the header are checked against a
 * limit before anything proportional to them is allocated or inflated.
 */
import { open, stat } from 'node:fs/promises';
import { boundedGunzip, isGzip } from './bounded-gunzip.ts';
import { swapBytes, typedView } from './datatypes.ts';
import { NiftiError } from './nifti-error.ts';
import { NIFTI2_HEADER_BYTES, parseNiftiHeader, type NiftiHeaderInfo } from './nifti-header.ts';
import { reorientToCanonical } from './orientation.ts';

/** Default limit on the decoded float32 volume and on inflated bytes: 1 GiB. */
export const DEFAULT_MAX_NIFTI_BYTES = 1 << 30;

export interface ReadNiftiOptions {
  /** Refuse files whose decoded float32 volume (or raw data to inflate) exceeds this many bytes. */
  maxBytes?: number;
  /**
   * 4D+ files: which 3D volume to read (0-based). Without it a file with more than one volume is refused
   * (UNSUPPORTED_DIMENSIONS): silently picking a channel of a multi-modal image would train on the wrong one.
   */
  volumeIndex?: number;
  /** NaN/Inf voxels: `error` (default) refuses the file; `zero` replaces them with 0. */
  nonFinite?: 'error' | 'zero';
}

export interface NiftiVolume extends NiftiHeaderInfo {
  /** Scaled (scl_slope/scl_inter applied) voxel values in canonical RAS order, x fastest. */
  readonly data: Float32Array;
  /** Which 3D volume of a 4D file this is (0 for 3D files). */
  readonly volumeIndex: number;
  /** NaN/Inf voxels found (only non-zero with `nonFinite: 'zero'`; they were replaced by 0). */
  readonly nonFiniteVoxels: number;
}

async function statFile(file: string): Promise<number> {
  let st;
  try {
    st = await stat(file);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new NiftiError('NOT_FOUND', file, 'no such file');
    throw new NiftiError('IO_ERROR', file, `cannot stat (${code ?? String(e)})`);
  }
  if (st.isDirectory()) throw new NiftiError('NOT_A_FILE', file, 'is a directory, not a NIfTI file');
  if (!st.isFile()) throw new NiftiError('NOT_A_FILE', file, 'is not a regular file');
  if (st.size === 0) throw new NiftiError('EMPTY_FILE', file, 'file is empty (0 bytes)');
  return st.size;
}

/** Reads bytes [0, length) of a file (fewer if the file is shorter). */
async function readPrefix(file: string, length: number): Promise<Uint8Array> {
  let fh;
  try {
    fh = await open(file, 'r');
    const buf = new Uint8Array(length);
    let got = 0;
    while (got < length) {
      const { bytesRead } = await fh.read(buf, got, length - got, got);
      if (bytesRead === 0) break;
      got += bytesRead;
    }
    return got === length ? buf : buf.subarray(0, got);
  } catch (e) {
    throw new NiftiError('IO_ERROR', file, `cannot read (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
  } finally {
    await fh?.close();
  }
}

/** First compressed bytes read to peek at a .nii.gz header. */
const GZ_PEEK_BYTES = 1 << 16;

function maxBytesOf(opts: ReadNiftiOptions | undefined): number {
  const m = opts?.maxBytes ?? DEFAULT_MAX_NIFTI_BYTES;
  if (!(m > 0)) throw new RangeError(`maxBytes must be positive, got ${m}`);
  return m;
}

/** Header facts only (reads and inflates just the first bytes of the file). */
export async function readNiftiHeader(file: string, opts?: ReadNiftiOptions): Promise<NiftiHeaderInfo> {
  const size = await statFile(file);
  const bytes = await readPrefix(file, Math.min(size, GZ_PEEK_BYTES));
  const head = isGzip(bytes) ? boundedGunzip(file, bytes, maxBytesOf(opts) + NIFTI2_HEADER_BYTES, NIFTI2_HEADER_BYTES, bytes.length < size) : bytes;
  const { dt: _dt, ...info } = parseNiftiHeader(file, head);
  return info;
}

/** Decodes an in-memory file (already read from disk); `file` names it in errors. */
export function decodeNifti(file: string, bytes: Uint8Array, opts?: ReadNiftiOptions): NiftiVolume {
  const maxBytes = maxBytesOf(opts);
  if (bytes.length === 0) throw new NiftiError('EMPTY_FILE', file, 'file is empty (0 bytes)');
  const gz = isGzip(bytes);
  const head = gz ? boundedGunzip(file, bytes, maxBytes + NIFTI2_HEADER_BYTES, NIFTI2_HEADER_BYTES) : bytes;
  const h = parseNiftiHeader(file, head);
  const { dt, ...info } = h;
  const { voxels, volumeIndex, start, end } = planVolume(file, h, opts);
  // Inflate only as far as the chosen volume; a stream that stops earlier is truncated.
  const body = gz ? boundedGunzip(file, bytes, end, end) : bytes;
  if (body.length < end) {
    throw new NiftiError('TRUNCATED', file, `voxel data ends at byte ${body.length}, the header needs ${end} (dims ${h.rawDims.join('x')}, ${dt.name})`);
  }
  return decodeVoxels(file, h, info, body, voxels, volumeIndex, start, end, opts);
}

/** Checks the size limits and the 4D policy; returns the byte range of the chosen volume. */
function planVolume(
  file: string,
  h: ReturnType<typeof parseNiftiHeader>,
  opts: ReadNiftiOptions | undefined,
): { voxels: number; volumeIndex: number; start: number; end: number } {
  const maxBytes = maxBytesOf(opts);
  const dt = h.dt;
  const [X, Y, Z] = h.geometry.sourceDims;
  const voxels = X * Y * Z;
  if (voxels * 4 > maxBytes) {
    throw new NiftiError('TOO_LARGE', file, `dims ${h.rawDims.join('x')} need ${voxels * 4} bytes as float32, over the limit of ${maxBytes} (raise maxBytes to allow)`);
  }
  let volumeIndex = 0;
  if (h.numVolumes > 1) {
    if (opts?.volumeIndex === undefined) {
      throw new NiftiError('UNSUPPORTED_DIMENSIONS', file, `${h.rawDims.length}D image with ${h.numVolumes} volumes (dims ${h.rawDims.join('x')}); choose one with volumeIndex`);
    }
    volumeIndex = opts.volumeIndex;
  } else if (opts?.volumeIndex !== undefined && opts.volumeIndex !== 0) {
    throw new NiftiError('UNSUPPORTED_DIMENSIONS', file, `volumeIndex ${opts.volumeIndex} requested but the image has 1 volume`);
  }
  if (!Number.isInteger(volumeIndex) || volumeIndex < 0 || volumeIndex >= h.numVolumes) {
    throw new NiftiError('UNSUPPORTED_DIMENSIONS', file, `volumeIndex ${volumeIndex} is outside 0..${h.numVolumes - 1}`);
  }
  const volBytes = voxels * dt.bytes;
  const start = h.voxOffset + volumeIndex * volBytes;
  const end = start + volBytes;
  if (end > maxBytes + h.voxOffset) {
    throw new NiftiError('TOO_LARGE', file, `reading volume ${volumeIndex} needs ${end} bytes, over the limit of ${maxBytes}`);
  }
  return { voxels, volumeIndex, start, end };
}

function decodeVoxels(
  file: string,
  h: ReturnType<typeof parseNiftiHeader>,
  info: NiftiHeaderInfo,
  body: Uint8Array,
  voxels: number,
  volumeIndex: number,
  start: number,
  end: number,
  opts: ReadNiftiOptions | undefined,
): NiftiVolume {
  const dt = h.dt;
  // Copy into an aligned buffer so that the typed view is legal whatever vox_offset is.
  const raw = body.slice(start, end);
  if (!h.littleEndian) swapBytes(raw, dt.bytes);
  const src = typedView(dt, raw.buffer);
  const slope = h.sclSlope;
  const inter = h.sclInter;
  const scaled = new Float32Array(voxels);
  let bad = 0;
  const zero = opts?.nonFinite === 'zero';
  for (let i = 0; i < voxels; i++) {
    let v = src[i] * slope + inter;
    if (!Number.isFinite(v) || (v !== 0 && !Number.isFinite(Math.fround(v)))) {
      bad++;
      v = 0;
    }
    scaled[i] = v;
  }
  if (bad > 0 && !zero) throw new NiftiError('NON_FINITE', file, `${bad} voxel(s) are NaN or infinite`);
  const r = h.reorientation;
  const identity = r.perm[0] === 0 && r.perm[1] === 1 && r.perm[2] === 2 && !r.flip[0] && !r.flip[1] && !r.flip[2];
  const data = identity ? scaled : reorientToCanonical(scaled, r, new Float32Array(voxels));
  return { ...info, data, volumeIndex, nonFiniteVoxels: bad };
}

/**
 * Reads one NIfTI volume into canonical RAS+ order.
 *
 * @example
 * const img = await readNifti('imagesTr/case_000_0000.nii.gz');
 * img.dims; img.spacing; img.orientation; // [181, 217, 181], [1, 1, 1], 'RAS'
 */
export async function readNifti(file: string, opts?: ReadNiftiOptions): Promise<NiftiVolume> {
  const size = await statFile(file);
  const maxBytes = maxBytesOf(opts);
  const head = await readPrefix(file, Math.min(size, GZ_PEEK_BYTES));
  if (isGzip(head)) {
    // Compressed data is never larger than what it inflates to (plus a few bytes), so this bound is safe.
    if (size > maxBytes + GZ_PEEK_BYTES) throw new NiftiError('TOO_LARGE', file, `compressed file of ${size} bytes is over the limit of ${maxBytes}`);
    return decodeNifti(file, size <= head.length ? head : await readPrefix(file, size), opts);
  }
  // Uncompressed: validate the header, then read only the bytes the chosen volume needs.
  const h = parseNiftiHeader(file, head);
  const { dt: _dt, ...info } = h;
  const { voxels, volumeIndex, start, end } = planVolume(file, h, opts);
  if (size < end) {
    throw new NiftiError('TRUNCATED', file, `file has ${size} bytes, the header needs ${end} (dims ${h.rawDims.join('x')}, ${h.dt.name})`);
  }
  const body = end <= head.length ? head : await readPrefix(file, end);
  return decodeVoxels(file, h, info, body, voxels, volumeIndex, start, end, opts);
}
