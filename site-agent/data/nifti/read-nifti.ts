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
import { pairFiles } from './nifti-pair.ts';

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

type ParsedHeader = ReturnType<typeof parseNiftiHeader>;

/** The header of `file` (or of its .hdr companion) and the file that holds the voxels. */
async function loadHeader(file: string, opts: ReadNiftiOptions | undefined): Promise<{ h: ParsedHeader; imageFile: string; head: Uint8Array; headerFileSize: number }> {
  const pair = pairFiles(file);
  const headerFile = pair?.header ?? file;
  if (pair !== undefined && headerFile !== file) await statFile(file);
  const size = await statFile(headerFile);
  const head = await readPrefix(headerFile, Math.min(size, GZ_PEEK_BYTES));
  const bytes = isGzip(head) ? boundedGunzip(headerFile, head, maxBytesOf(opts) + NIFTI2_HEADER_BYTES, NIFTI2_HEADER_BYTES, head.length < size) : head;
  const h = parseNiftiHeader(headerFile, bytes);
  if (pair === undefined && h.pair) {
    throw new NiftiError('BAD_MAGIC', file, `a .hdr/.img pair header (magic ni${h.version}) in a single file; name it .hdr and put the voxels in the matching .img`);
  }
  if (pair === undefined) return { h, imageFile: file, head, headerFileSize: size };
  if (!h.pair) throw new NiftiError('BAD_MAGIC', headerFile, `a single-file header (magic n+${h.version}) in a .hdr file; a pair header has magic ni${h.version}`);
  return { h, imageFile: pair.image, head, headerFileSize: size };
}

/** Header facts only (reads and inflates just the first bytes of the file). */
export async function readNiftiHeader(file: string, opts?: ReadNiftiOptions): Promise<NiftiHeaderInfo> {
  const { h } = await loadHeader(file, opts);
  const { dt: _dt, ...info } = h;
  return info;
}

/** Decodes an in-memory single file (.nii / .nii.gz, already read from disk); `file` names it in errors. */
export function decodeNifti(file: string, bytes: Uint8Array, opts?: ReadNiftiOptions): NiftiVolume {
  const maxBytes = maxBytesOf(opts);
  if (bytes.length === 0) throw new NiftiError('EMPTY_FILE', file, 'file is empty (0 bytes)');
  const gz = isGzip(bytes);
  const head = gz ? boundedGunzip(file, bytes, maxBytes + NIFTI2_HEADER_BYTES, NIFTI2_HEADER_BYTES) : bytes;
  const h = parseNiftiHeader(file, head);
  if (h.pair) throw new NiftiError('BAD_MAGIC', file, `a .hdr/.img pair header (magic ni${h.version}); read the pair from its files`);
  const plan = planVolumes(file, h, opts, false);
  const body = gz ? boundedGunzip(file, bytes, maxBytes + h.voxOffset, plan.end) : bytes;
  return toVolume(h, decodeRange(file, h, body, plan, opts), plan.first);
}

interface VolumePlan {
  readonly voxels: number;
  readonly first: number;
  readonly count: number;
  /** Byte range [start, end) of the chosen volumes in the image file. */
  readonly start: number;
  readonly end: number;
}

/** Checks the size limits and the 4D policy; returns the byte range of the chosen volume(s). */
function planVolumes(file: string, h: ParsedHeader, opts: ReadNiftiOptions | undefined, all: boolean): VolumePlan {
  const maxBytes = maxBytesOf(opts);
  const [X, Y, Z] = h.geometry.sourceDims;
  const voxels = X * Y * Z;
  let first = 0;
  let count = 1;
  if (all) count = h.numVolumes;
  else if (h.numVolumes > 1) {
    if (opts?.volumeIndex === undefined) {
      throw new NiftiError('UNSUPPORTED_DIMENSIONS', file, `${h.rawDims.length}D image with ${h.numVolumes} volumes (dims ${h.rawDims.join('x')}); choose one with volumeIndex (CLI --volume), or read them all as channels`);
    }
    first = opts.volumeIndex;
  } else if (opts?.volumeIndex !== undefined && opts.volumeIndex !== 0) {
    throw new NiftiError('UNSUPPORTED_DIMENSIONS', file, `volumeIndex ${opts.volumeIndex} requested but the image has 1 volume`);
  }
  if (!Number.isInteger(first) || first < 0 || first >= h.numVolumes) {
    throw new NiftiError('UNSUPPORTED_DIMENSIONS', file, `volumeIndex ${first} is outside 0..${h.numVolumes - 1}`);
  }
  if (voxels * count * 4 > maxBytes) {
    const what = count > 1 ? `${count} volumes of ${X}x${Y}x${Z}` : `dims ${h.rawDims.join('x')}`;
    throw new NiftiError('TOO_LARGE', file, `${what} need ${voxels * count * 4} bytes as float32, over the limit of ${maxBytes} (raise maxBytes to allow)`);
  }
  const volBytes = voxels * h.dt.bytes;
  const start = h.voxOffset + first * volBytes;
  const end = start + count * volBytes;
  if (end > maxBytes + h.voxOffset) {
    throw new NiftiError('TOO_LARGE', file, `reading volume ${first} needs ${end} bytes, over the limit of ${maxBytes}`);
  }
  return { voxels, first, count, start, end };
}

/** Scaled float32 values of the planned volumes, each in canonical order. */
function decodeRange(file: string, h: ParsedHeader, body: Uint8Array, p: VolumePlan, opts: ReadNiftiOptions | undefined): { volumes: Float32Array[]; nonFinite: number } {
  if (body.length < p.end) {
    throw new NiftiError('TRUNCATED', file, `voxel data ends at byte ${body.length}, the header needs ${p.end} (dims ${h.rawDims.join('x')}, ${h.dt.name})`);
  }
  const volumes: Float32Array[] = [];
  let nonFinite = 0;
  const volBytes = p.voxels * h.dt.bytes;
  for (let k = 0; k < p.count; k++) {
    const r = decodeVoxels(file, h, body.subarray(p.start + k * volBytes, p.start + (k + 1) * volBytes), p.voxels, opts);
    volumes.push(r.data);
    nonFinite += r.nonFinite;
  }
  return { volumes, nonFinite };
}

function toVolume(h: ParsedHeader, r: { volumes: Float32Array[]; nonFinite: number }, volumeIndex: number): NiftiVolume {
  const { dt: _dt, ...info } = h;
  return { ...info, data: r.volumes[0], volumeIndex, nonFiniteVoxels: r.nonFinite };
}

/** Largest finite float32. */
const FLOAT32_MAX = 3.4028234663852886e38;

function decodeVoxels(file: string, h: ParsedHeader, bytes: Uint8Array, voxels: number, opts: ReadNiftiOptions | undefined): { data: Float32Array; nonFinite: number } {
  const dt = h.dt;
  // Copy into an aligned buffer so that the typed view is legal whatever vox_offset is.
  const raw = bytes.slice();
  if (!h.littleEndian) swapBytes(raw, dt.bytes);
  const src = typedView(dt, raw.buffer);
  const slope = h.sclSlope;
  const inter = h.sclInter;
  const scaled = new Float32Array(voxels);
  let bad = 0;
  let over = 0;
  let worst = 0;
  for (let i = 0; i < voxels; i++) {
    const x = src[i];
    if (!Number.isFinite(x)) {
      bad++;
      continue;
    }
    const v = x * slope + inter;
    if (!(Math.abs(v) <= FLOAT32_MAX)) {
      over++;
      if (!(Math.abs(v) <= Math.abs(worst))) worst = v;
      continue;
    }
    scaled[i] = v;
  }
  if (over > 0) {
    const scaling = slope !== 1 || inter !== 0 ? ` after scaling (scl_slope ${slope}, scl_inter ${inter})` : '';
    throw new NiftiError('VALUE_OUT_OF_RANGE', file, `${over} voxel(s) are beyond the float32 range +-3.4e38${scaling}, largest magnitude ${worst.toExponential(3)}`);
  }
  if (bad > 0 && opts?.nonFinite !== 'zero') throw new NiftiError('NON_FINITE', file, `${bad} voxel(s) are NaN or infinite in the stored ${dt.name} data`);
  const r = h.reorientation;
  const identity = r.perm[0] === 0 && r.perm[1] === 1 && r.perm[2] === 2 && !r.flip[0] && !r.flip[1] && !r.flip[2];
  const data = identity ? scaled : reorientToCanonical(scaled, r, new Float32Array(voxels));
  return { data, nonFinite: bad };
}

/** Bytes [0, end) of the voxel file (a .nii.gz / .img.gz is inflated only that far). */
async function imageBytes(imageFile: string, sameAsHeader: { head: Uint8Array; size: number } | undefined, h: ParsedHeader, p: VolumePlan, maxBytes: number): Promise<Uint8Array> {
  const size = sameAsHeader?.size ?? (await statFile(imageFile));
  const head = sameAsHeader?.head ?? (await readPrefix(imageFile, Math.min(size, GZ_PEEK_BYTES)));
  if (isGzip(head)) {
    // Compressed data is never larger than what it inflates to (plus a few bytes), so this bound is safe.
    if (size > maxBytes + h.voxOffset + GZ_PEEK_BYTES) throw new NiftiError('TOO_LARGE', imageFile, `compressed file of ${size} bytes is over the limit of ${maxBytes}`);
    const gz = size <= head.length ? head : await readPrefix(imageFile, size);
    return boundedGunzip(imageFile, gz, maxBytes + h.voxOffset, p.end);
  }
  if (size < p.end) {
    throw new NiftiError('TRUNCATED', imageFile, `file has ${size} bytes, the header needs ${p.end} (dims ${h.rawDims.join('x')}, ${h.dt.name})`);
  }
  return p.end <= head.length ? head : await readPrefix(imageFile, p.end);
}

async function readPlanned(file: string, opts: ReadNiftiOptions | undefined, all: boolean): Promise<{ h: ParsedHeader; r: { volumes: Float32Array[]; nonFinite: number }; first: number }> {
  const { h, imageFile, head, headerFileSize } = await loadHeader(file, opts);
  const plan = planVolumes(imageFile, h, opts, all);
  const single = imageFile === h.file ? { head, size: headerFileSize } : undefined;
  const body = await imageBytes(imageFile, single, h, plan, maxBytesOf(opts));
  return { h, r: decodeRange(imageFile, h, body, plan, opts), first: plan.first };
}

/**
 * Reads one NIfTI volume into canonical RAS+ order: `.nii`, `.nii.gz`, or a pair (`.hdr` + `.img`, either
 * name given, each optionally gzipped).
 *
 * @example
 * const img = await readNifti('imagesTr/case_000_0000.nii.gz');
 * img.dims; img.spacing; img.orientation; // [181, 217, 181], [1, 1, 1], 'RAS'
 */
export async function readNifti(file: string, opts?: ReadNiftiOptions): Promise<NiftiVolume> {
  const { h, r, first } = await readPlanned(file, opts, false);
  return toVolume(h, r, first);
}

export interface NiftiChannels extends NiftiHeaderInfo {
  /** One canonical-order float32 volume per stored 3D volume (dims 4..7 flattened), in file order. */
  readonly channels: readonly Float32Array[];
  readonly nonFiniteVoxels: number;
}

/**
 * Reads every 3D volume of a file (a multi-contrast 4D image: one channel per volume) with one pass over the
 * data. `maxBytes` bounds all channels together.
 *
 * @example
 * const mr = await readNiftiChannels('BRATS_001.nii.gz'); // 4 volumes: FLAIR, T1w, T1gd, T2w
 * mr.channels.length; // 4
 */
export async function readNiftiChannels(file: string, opts?: ReadNiftiOptions): Promise<NiftiChannels> {
  const { h, r } = await readPlanned(file, opts, true);
  const { dt: _dt, ...info } = h;
  return { ...info, channels: r.volumes, nonFiniteVoxels: r.nonFinite };
}
