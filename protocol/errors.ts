/**
 * Typed errors of the wire protocol. Every rejection a session or codec can produce has a code from
 * a closed union, so callers switch on it (and count it) instead of parsing messages.
 */

/** Why an envelope, handshake, transfer or encoded tensor was rejected. */
export type ProtocolErrorCode =
  | 'malformed' // not parseable, or fails its schema
  | 'bad_version' // a version this build does not speak
  | 'unsigned' // a handshake without a signature
  | 'bad_signature' // a signature that does not verify
  | 'not_enrolled' // identity key not on the allow-list and no valid token
  | 'wrong_key' // the peer's identity key is not the one pinned or enrolled for it
  | 'tampered' // secretbox authentication failed (flipped byte or wrong session key)
  | 'replay' // an envelope counter already seen
  | 'reordered' // an envelope counter older than the replay window
  | 'oversized' // an envelope, transfer or tensor larger than the configured limit
  | 'handshake_required' // a sealed envelope before the handshake completed
  | 'transfer_invalid' // a chunk that does not belong to an open transfer or has the wrong length
  | 'digest_mismatch' // a reassembled transfer whose hash differs from the announced one
  | 'codec' // an encoded WeightSet that is structurally invalid
  | 'timeout'
  | 'closed';

/** All codes, for exhaustive counters (Prometheus labels) and tests. */
export const PROTOCOL_ERROR_CODES: readonly ProtocolErrorCode[] = [
  'malformed',
  'bad_version',
  'unsigned',
  'bad_signature',
  'not_enrolled',
  'wrong_key',
  'tampered',
  'replay',
  'reordered',
  'oversized',
  'handshake_required',
  'transfer_invalid',
  'digest_mismatch',
  'codec',
  'timeout',
  'closed',
];

/** The one error class the protocol layer throws. `reason` never contains payload plaintext. */
export class ProtocolError extends Error {
  override readonly name = 'ProtocolError';
  constructor(
    readonly code: ProtocolErrorCode,
    reason: string,
  ) {
    super(`${code}: ${reason}`);
  }
}

/** True if `e` is a ProtocolError (optionally with the given code). */
export function isProtocolError(e: unknown, code?: ProtocolErrorCode): e is ProtocolError {
  return e instanceof ProtocolError && (code === undefined || e.code === code);
}
