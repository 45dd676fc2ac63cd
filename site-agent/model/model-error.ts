/** Closed set of reasons the model layer refuses an input or a file. */
export type ModelErrorCode =
  | 'INVALID_CONFIG'
  | 'INVALID_INPUT'
  | 'WEIGHT_MISMATCH'
  | 'NON_FINITE_WEIGHT'
  | 'UNKNOWN_PARAMETER'
  | 'MODEL_FILE_MISSING'
  | 'MODEL_FILE_CORRUPT'
  | 'MODEL_FILE_TRUNCATED'
  | 'MODEL_VERSION'
  | 'DISPOSED';

/** Bad input to the model (config, tensor, weight set, model directory); the message names what is wrong. */
export class ModelError extends Error {
  readonly code: ModelErrorCode;
  constructor(code: ModelErrorCode, message: string) {
    super(message);
    this.name = 'ModelError';
    this.code = code;
  }
}
