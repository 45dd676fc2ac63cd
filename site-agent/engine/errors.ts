/**
 * Typed errors of the compute engine. `code` is a closed union so callers can switch on it.
 */
export type EngineErrorCode =
  | 'UNKNOWN_BACKEND'
  | 'BACKEND_UNAVAILABLE'
  | 'NATIVE_NOT_BUILT'
  | 'NATIVE_REQUIRED'
  | 'SELF_CHECK_FAILED'
  | 'BAD_ARGUMENT';

export class EngineError extends Error {
  readonly code: EngineErrorCode;
  constructor(code: EngineErrorCode, message: string) {
    super(message);
    this.name = 'EngineError';
    this.code = code;
  }
}
