/**
 * Byte helpers for every part of fedsfda (no dependencies, no error types of their own: callers that refuse input
 * wrap the `undefined` of the strict decoders into their own typed errors, as protocol/bytes.ts does).
 */
const utf8Encoder = new TextEncoder();
const utf8Decoder = new TextDecoder('utf-8', { fatal: true });

export function utf8(s: string): Uint8Array {
  return utf8Encoder.encode(s);
}

/** UTF-8 decode that refuses invalid sequences (undefined), so a hostile peer cannot smuggle replacement characters. */
export function decodeUtf8Strict(b: Uint8Array): string | undefined {
  try {
    return utf8Decoder.decode(b);
  } catch {
    return undefined;
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

/** Strict (padded, canonical alphabet) base64 decode; undefined for anything else. */
export function decodeBase64Strict(s: string): Uint8Array | undefined {
  if (typeof s !== 'string' || s.length % 4 !== 0 || !BASE64_RE.test(s)) return undefined;
  return new Uint8Array(Buffer.from(s, 'base64'));
}

export function toHex(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');
}

/** Equality in time independent of where the bytes differ (for keys, tags and digests). */
export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let d = 0;
  for (let i = 0; i < a.length; i++) d |= a[i] ^ b[i];
  return d === 0;
}

export function isBytes(x: unknown, length?: number): x is Uint8Array {
  return x instanceof Uint8Array && (length === undefined || x.length === length);
}
