/**
 * Typed errors of the secure-aggregation protocol. Every refusal carries a closed `code` so that a transport can
 * send it back as data (`{ok:false, error:{code, reason}}`) instead of crashing a serving process.
 */
export type SecAggErrorCode =
  /** The configuration could wrap around Z_2^32 or has impossible threshold/degree values. */
  | 'bad-config'
  /** An input vector contains NaN or an infinity, or has the wrong length. */
  | 'bad-input'
  /** A peer's public keys are not signed by the identity key enrolled for it (e.g. a coordinator swapped them). */
  | 'bad-signature'
  /** A message names a site that is not enrolled / not part of this round. */
  | 'unknown-site'
  /** Fewer than t sites (or t share holders) survive; the round aborts and nothing partial is revealed. */
  | 'below-threshold'
  /** A message arrived in a stage where it is not allowed (state-machine transition refused). */
  | 'wrong-stage'
  /** A message is structurally wrong: field lengths, round id, duplicated or self-addressed entries. */
  | 'malformed-message'
  /** A share ciphertext fails to decrypt or names the wrong sender/recipient/round. */
  | 'bad-ciphertext'
  /** An unmask request that would reveal both kinds of share for one peer, or contradicts earlier stages. */
  | 'inconsistent-request'
  /** The session already aborted; it refuses every further message. */
  | 'aborted';

export class SecAggError extends Error {
  readonly code: SecAggErrorCode;
  constructor(code: SecAggErrorCode, message: string) {
    super(`[secagg:${code}] ${message}`);
    this.name = 'SecAggError';
    this.code = code;
  }
}

export function isSecAggError(e: unknown): e is SecAggError {
  return e instanceof SecAggError;
}
