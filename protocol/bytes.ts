/** Small byte helpers shared by the codec, handshake and session (no dependencies). */
import { ProtocolError } from './errors.ts';

const utf8Encoder = new TextEncoder();
const utf8Decoder = new TextDecoder('utf-8', { fatal: true });

export function utf8(s: string): Uint8Array {
  return utf8Encoder.encode(s);
}

/** Decode UTF-8, refusing invalid sequences (a hostile peer must not smuggle replacement characters). */
export function fromUtf8(b: Uint8Array): string {
  try {
    return utf8Decoder.decode(b);
  } catch {
    throw new ProtocolError('malformed', 'invalid UTF-8');
  }
}

export function concatBytes(...parts: Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** 4-byte little-endian length prefix followed by the bytes: unambiguous concatenation for signatures. */
export function lengthPrefixed(b: Uint8Array): Uint8Array {
  const out = new Uint8Array(4 + b.length);
  new DataView(out.buffer).setUint32(0, b.length, true);
  out.set(b, 4);
  return out;
}

export function toBase64(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('base64');
}

const BASE64_RE = /^[A-Za-z0-9+/]*={0,2}$/;

/** Strict base64 decode; `expectedLength` rejects keys and signatures of the wrong size. */
export function fromBase64(s: string, expectedLength?: number): Uint8Array {
  if (typeof s !== 'string' || s.length % 4 !== 0 || !BASE64_RE.test(s)) {
    throw new ProtocolError('malformed', 'invalid base64');
  }
  const b = new Uint8Array(Buffer.from(s, 'base64'));
  if (expectedLength !== undefined && b.length !== expectedLength) {
    throw new ProtocolError('malformed', `expected ${expectedLength} bytes, got ${b.length}`);
  }
  return b;
}

export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let d = 0;
  for (let i = 0; i < a.length; i++) d |= a[i] ^ b[i];
  return d === 0;
}

export function toHex(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');
}
