/**
 * The one error class of the differential-privacy layer. A closed set of codes, so a CLI, a coordinator or a site
 * can switch on it (and refuse a run before round 1) instead of parsing messages.
 */
export type PrivacyErrorCode =
  /** An argument out of its domain: a sampling rate outside [0, 1], a negative noise multiplier, delta <= 0 ... */
  | 'bad-argument'
  /** The configured run would spend more than its (epsilon, delta) budget; nothing has been computed or sent. */
  | 'budget-exceeded'
  /** No noise multiplier up to the search limit reaches the target epsilon. */
  | 'unreachable-target'
  /** A series or a log-space computation failed (should not happen for valid arguments). */
  | 'numerical';

export class PrivacyError extends Error {
  override readonly name = 'PrivacyError';
  constructor(
    readonly code: PrivacyErrorCode,
    reason: string,
  ) {
    super(reason); // the CLI and the logs print `code` next to it
  }
}

export function isPrivacyError(e: unknown, code?: PrivacyErrorCode): e is PrivacyError {
  return e instanceof PrivacyError && (code === undefined || e.code === code);
}
