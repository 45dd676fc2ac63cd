/** Closed set of reasons adaptation refuses an input. */
export type AdaptErrorCode =
  | 'BAD_OPTION'
  | 'BAD_SHAPE'
  | 'EMPTY_TARGET'
  | 'STATS_MISMATCH'
  | 'STATS_FILE_INVALID'
  | 'STATS_VERSION'
  | 'GMM_UNAVAILABLE'
  | 'NEEDS_BATCH_NORM'
  | 'SOURCE_STATS_REQUIRED'
  | 'UNKNOWN_METHOD';

/** Bad input to an adaptation function; the message names what is wrong. */
export class AdaptError extends Error {
  readonly code: AdaptErrorCode;
  constructor(code: AdaptErrorCode, message: string) {
    super(message);
    this.name = 'AdaptError';
    this.code = code;
  }
}
