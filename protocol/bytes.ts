/** The protocol's byte decoders: the generic helpers (protocol/common/bytes.ts) with the protocol's typed refusals. */
import { decodeBase64Strict, decodeUtf8Strict } from './common/index.ts';
import { ProtocolError } from './errors.ts';

export { bytesEqual, concatBytes, lengthPrefixed, toBase64, toHex, utf8 } from './common/index.ts';

/** Decode UTF-8, refusing invalid sequences (a hostile peer must not smuggle replacement characters). */
export function fromUtf8(b: Uint8Array): string {
  const s = decodeUtf8Strict(b);
  if (s === undefined) throw new ProtocolError('malformed', 'invalid UTF-8');
  return s;
}

/** Strict base64 decode; `expectedLength` rejects keys and signatures of the wrong size. */
export function fromBase64(s: string, expectedLength?: number): Uint8Array {
  const b = decodeBase64Strict(s);
  if (b === undefined) throw new ProtocolError('malformed', 'invalid base64');
  if (expectedLength !== undefined && b.length !== expectedLength) {
    throw new ProtocolError('malformed', `expected ${expectedLength} bytes, got ${b.length}`);
  }
  return b;
}
