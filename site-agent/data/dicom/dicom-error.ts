/**
 * Why a DICOM file or series cannot be used. Messages name the file path the operator gave and numeric facts
 * (counts, sizes, angles, millimetres) only: never a header's text (patient names, IDs, dates, UIDs, descriptions),
 * so an error may be logged or shown anywhere without leaking what the header says.
 */
export type DicomErrorCode =
  | 'NOT_FOUND'
  | 'IO_ERROR'
  | 'NOT_DICOM'
  | 'CORRUPT'
  | 'NOT_AN_IMAGE'
  | 'UNSUPPORTED_TRANSFER_SYNTAX'
  | 'UNSUPPORTED_PIXEL_FORMAT'
  | 'MULTIFRAME'
  | 'MISSING_GEOMETRY'
  | 'INCONSISTENT_SERIES'
  | 'DUPLICATE_POSITION'
  | 'GANTRY_TILT'
  | 'NON_UNIFORM_SPACING'
  | 'NO_SERIES'
  | 'SEVERAL_SERIES'
  | 'TOO_LARGE';

export class DicomError extends Error {
  readonly code: DicomErrorCode;
  readonly file: string;
  constructor(code: DicomErrorCode, file: string, reason: string) {
    super(`${file}: ${reason} [${code}]`);
    this.name = 'DicomError';
    this.code = code;
    this.file = file;
  }
}
