/** Why a NIfTI file cannot be used. A closed set, so that reports and tests can switch on it. */
export type NiftiErrorCode =
  | 'NOT_FOUND'
  | 'NOT_A_FILE'
  | 'EMPTY_FILE'
  | 'IO_ERROR'
  | 'BAD_MAGIC'
  | 'CORRUPT_GZIP'
  | 'TRUNCATED'
  | 'TOO_LARGE'
  | 'BAD_HEADER'
  | 'UNSUPPORTED_DATATYPE'
  | 'UNSUPPORTED_DIMENSIONS'
  | 'NON_FINITE'
  | 'BAD_LABEL_VALUES'
  | 'VALUE_OUT_OF_RANGE';

/** Every NIfTI read/write failure: names the file and the reason. */
export class NiftiError extends Error {
  readonly code: NiftiErrorCode;
  readonly file: string;
  constructor(code: NiftiErrorCode, file: string, reason: string) {
    super(`${file}: ${reason} [${code}]`);
    this.name = 'NiftiError';
    this.code = code;
    this.file = file;
  }
}
