/** Closed set of reasons training / prediction refuses its input. */
export type TrainErrorCode = 'INVALID_CONFIG' | 'INVALID_DATA' | 'INVALID_INPUT' | 'ABORTED' | 'DIVERGED';

/** Bad input to the training layer; the message names the offending field. */
export class TrainError extends Error {
  readonly code: TrainErrorCode;
  constructor(code: TrainErrorCode, message: string) {
    super(message);
    this.name = 'TrainError';
    this.code = code;
  }
}
