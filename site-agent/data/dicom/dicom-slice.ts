/**
 * One DICOM file -> the facts a volume needs (geometry, pixel format, rescale) and its pixel values. Parsing is
 * dicom-parser's (cornerstone's Part 10 parser); this file only reads the attributes it needs and checks them.
 * Header text is read for grouping (SeriesInstanceUID) and kept in memory only; it never enters a message.
 */
import { readFile } from 'node:fs/promises';
import dicomParser from 'dicom-parser';
import { DicomError } from './dicom-error.ts';
import { decodeRleFrame } from './rle.ts';
import { NATIVE_SYNTAXES, RLE_LOSSLESS, transferSyntaxName } from './transfer-syntax.ts';

export interface DicomSlice {
  readonly file: string;
  /** Grouping key only: never printed, logged or written. */
  readonly seriesKey: string;
  readonly rows: number;
  readonly cols: number;
  /** ImagePositionPatient (LPS mm) of the first transmitted pixel. */
  readonly position: readonly [number, number, number];
  /** ImageOrientationPatient: row direction (increasing column index) then column direction (increasing row index). */
  readonly orientation: readonly [number, number, number, number, number, number];
  /** PixelSpacing: [between rows, between columns] in mm. */
  readonly pixelSpacing: readonly [number, number];
  readonly sliceThickness?: number;
  readonly spacingBetweenSlices?: number;
  readonly instanceNumber?: number;
  readonly rescaleSlope: number;
  readonly rescaleIntercept: number;
  /** Rescaled values, row by row (row-major as transmitted). */
  readonly values: Float32Array;
}

const T = {
  transferSyntax: 'x00020010',
  seriesUid: 'x0020000e',
  instanceNumber: 'x00200013',
  position: 'x00200032',
  orientation: 'x00200037',
  samplesPerPixel: 'x00280002',
  frames: 'x00280008',
  rows: 'x00280010',
  cols: 'x00280011',
  pixelSpacing: 'x00280030',
  bitsAllocated: 'x00280100',
  pixelRepresentation: 'x00280103',
  rescaleIntercept: 'x00281052',
  rescaleSlope: 'x00281053',
  sliceThickness: 'x00180050',
  spacingBetweenSlices: 'x00180088',
  pixelData: 'x7fe00010',
  sharedGroups: 'x52009229',
  perFrameGroups: 'x52009230',
} as const;

function numbers(ds: dicomParser.DataSet, tag: string): number[] | undefined {
  const s = ds.string(tag);
  if (s === undefined || s.trim() === '') return undefined;
  const v = s.split('\\').map((x) => Number(x.trim()));
  return v.every((x) => Number.isFinite(x)) ? v : undefined;
}

function parse(file: string, bytes: Buffer): { ds: dicomParser.DataSet; syntax: string } {
  const tryParse = (fallback: string): dicomParser.DataSet => dicomParser.parseDicom(bytes, { TransferSyntaxUID: fallback });
  const part10 = bytes.length > 132 && bytes.toString('latin1', 128, 132) === 'DICM';
  try {
    if (part10) {
      const ds = tryParse('1.2.840.10008.1.2');
      return { ds, syntax: (ds.string(T.transferSyntax) ?? '').replace(/\0/g, '').trim() };
    }
    // No Part 10 preamble (a bare data set, as some old archives store them): implicit VR, else explicit VR.
    for (const syntax of ['1.2.840.10008.1.2', '1.2.840.10008.1.2.1']) {
      try {
        const ds = tryParse(syntax);
        if (ds.uint16(T.rows) !== undefined && ds.elements[T.pixelData] !== undefined) return { ds, syntax };
      } catch {
        // try the next encoding
      }
    }
  } catch (e) {
    // dicom-parser throws strings or objects; report only that it failed and whether the file ended early.
    const text = typeof e === 'string' ? e : e instanceof Error ? e.message : String((e as { exception?: string }).exception ?? '');
    throw new DicomError('CORRUPT', file, /overrun|truncat|end of/i.test(text) ? 'the DICOM data set ends early (truncated file)' : 'the DICOM data set cannot be parsed');
  }
  throw new DicomError('NOT_DICOM', file, 'not a DICOM file (no DICM preamble and no image data set)');
}

/** Reads the pixel bytes as numbers (one frame, one sample per pixel). */
function pixelValues(file: string, ds: dicomParser.DataSet, syntax: string, n: number): ArrayLike<number> {
  const el = ds.elements[T.pixelData];
  if (el === undefined) throw new DicomError('NOT_AN_IMAGE', file, 'no pixel data');
  const bits = ds.uint16(T.bitsAllocated) ?? 0;
  const signed = ds.uint16(T.pixelRepresentation) === 1;
  if (![8, 16, 32].includes(bits)) throw new DicomError('UNSUPPORTED_PIXEL_FORMAT', file, `BitsAllocated ${bits} (8, 16 or 32 are read)`);
  const bytesPer = bits / 8;
  let raw: Uint8Array;
  if (syntax === RLE_LOSSLESS) {
    if (!el.encapsulatedPixelData) throw new DicomError('CORRUPT', file, 'RLE transfer syntax without encapsulated pixel data');
    const frame = dicomParser.readEncapsulatedPixelDataFromFragments(ds, el, 0, el.fragments?.length ?? 0);
    raw = decodeRleFrame(file, new Uint8Array(frame.buffer, frame.byteOffset, frame.byteLength), n, bytesPer);
  } else {
    if (el.encapsulatedPixelData) throw new DicomError('CORRUPT', file, 'native transfer syntax with encapsulated pixel data');
    if (el.length < n * bytesPer) throw new DicomError('CORRUPT', file, `pixel data has ${el.length} bytes, ${n} pixels of ${bits} bits need ${n * bytesPer}`);
    raw = ds.byteArray.slice(el.dataOffset, el.dataOffset + n * bytesPer);
    if (NATIVE_SYNTAXES[syntax]?.bigEndian && bytesPer > 1) {
      for (let i = 0; i < raw.length; i += bytesPer) raw.subarray(i, i + bytesPer).reverse();
    }
  }
  const buf = raw.buffer.slice(raw.byteOffset, raw.byteOffset + n * bytesPer);
  if (bits === 8) return signed ? new Int8Array(buf) : new Uint8Array(buf);
  if (bits === 16) return signed ? new Int16Array(buf) : new Uint16Array(buf);
  return signed ? new Int32Array(buf) : new Uint32Array(buf);
}

/**
 * Reads one DICOM image file. Throws DicomError for files that are not single-frame grayscale images with
 * geometry (ImagePositionPatient, ImageOrientationPatient, PixelSpacing) in a supported transfer syntax.
 */
export async function readDicomSlice(file: string): Promise<DicomSlice> {
  let bytes: Buffer;
  try {
    bytes = await readFile(file);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new DicomError(code === 'ENOENT' ? 'NOT_FOUND' : 'IO_ERROR', file, `cannot read (${code ?? 'error'})`);
  }
  return decodeDicomSlice(file, bytes);
}

/** decodeDicomSlice for bytes already in memory. */
export function decodeDicomSlice(file: string, bytes: Buffer): DicomSlice {
  const { ds, syntax } = parse(file, bytes);
  if (NATIVE_SYNTAXES[syntax] === undefined && syntax !== RLE_LOSSLESS) {
    throw new DicomError('UNSUPPORTED_TRANSFER_SYNTAX', file, `pixel data is compressed as ${transferSyntaxName(syntax)}, which fedsfda does not decode; convert the series to NIfTI with dcm2niix (or to an uncompressed syntax with gdcmconv --raw) first`);
  }
  const rows = ds.uint16(T.rows);
  const cols = ds.uint16(T.cols);
  if (rows === undefined || cols === undefined || ds.elements[T.pixelData] === undefined) throw new DicomError('NOT_AN_IMAGE', file, 'no image (Rows, Columns or PixelData missing): a report, plan, structure set or other non-image object');
  const frames = numbers(ds, T.frames)?.[0] ?? 1;
  if (ds.elements[T.perFrameGroups] !== undefined || ds.elements[T.sharedGroups] !== undefined) {
    throw new DicomError('MULTIFRAME', file, `an enhanced multi-frame object (${frames} frame(s), geometry in functional groups), which fedsfda does not read; convert it with dcm2niix`);
  }
  if (frames !== 1) throw new DicomError('MULTIFRAME', file, `a multi-frame object (${frames} frames); per-frame geometry is not read, convert it with dcm2niix`);
  const spp = ds.uint16(T.samplesPerPixel) ?? 1;
  if (spp !== 1) throw new DicomError('UNSUPPORTED_PIXEL_FORMAT', file, `${spp} samples per pixel (colour); only grayscale images are read`);
  const pos = numbers(ds, T.position);
  const iop = numbers(ds, T.orientation);
  const ps = numbers(ds, T.pixelSpacing);
  if (pos?.length !== 3 || iop?.length !== 6 || ps?.length !== 2) {
    const missing = [pos?.length !== 3 && 'ImagePositionPatient', iop?.length !== 6 && 'ImageOrientationPatient', ps?.length !== 2 && 'PixelSpacing'].filter(Boolean).join(', ');
    throw new DicomError('MISSING_GEOMETRY', file, `no usable ${missing}: the image cannot be placed in patient space`);
  }
  const slope = numbers(ds, T.rescaleSlope)?.[0] ?? 1;
  const inter = numbers(ds, T.rescaleIntercept)?.[0] ?? 0;
  const n = rows * cols;
  const src = pixelValues(file, ds, syntax, n);
  const values = new Float32Array(n);
  for (let i = 0; i < n; i++) values[i] = src[i] * slope + inter;
  return {
    file,
    seriesKey: (ds.string(T.seriesUid) ?? '').trim(),
    rows,
    cols,
    position: [pos[0], pos[1], pos[2]],
    orientation: [iop[0], iop[1], iop[2], iop[3], iop[4], iop[5]],
    pixelSpacing: [ps[0], ps[1]],
    ...(numbers(ds, T.sliceThickness) ? { sliceThickness: numbers(ds, T.sliceThickness)![0] } : {}),
    ...(numbers(ds, T.spacingBetweenSlices) ? { spacingBetweenSlices: numbers(ds, T.spacingBetweenSlices)![0] } : {}),
    ...(numbers(ds, T.instanceNumber) ? { instanceNumber: numbers(ds, T.instanceNumber)![0] } : {}),
    rescaleSlope: slope,
    rescaleIntercept: inter,
    values,
  };
}
