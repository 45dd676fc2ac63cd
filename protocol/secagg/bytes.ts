/** Small byte helpers shared by the secagg primitives: UTF-8, length-prefixed fields, concatenation. */
import { concatBytes as concatAll, lengthPrefixed } from '../bytes.ts';
import { SecAggError } from './errors.ts';

const enc = new TextEncoder();
const dec = new TextDecoder('utf-8', { fatal: true });

export function utf8(s: string): Uint8Array {
  return enc.encode(s);
}

/** Concatenation of a list (the session layer's `concatBytes` takes the parts as arguments). */
export function concatBytes(parts: readonly Uint8Array[]): Uint8Array {
  return concatAll(...parts);
}

/** A field prefixed with its 4-byte little-endian length, so that concatenations are unambiguous. */
export { lengthPrefixed };

/** Reads the length-prefixed fields written by `lengthPrefixed`; refuses truncated or trailing bytes. */
export function readLengthPrefixed(b: Uint8Array, count: number): Uint8Array[] {
  const view = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const out: Uint8Array[] = [];
  let o = 0;
  for (let i = 0; i < count; i++) {
    if (o + 4 > b.length) throw new SecAggError('bad-ciphertext', `truncated field ${i}`);
    const len = view.getUint32(o, true);
    o += 4;
    if (o + len > b.length) throw new SecAggError('bad-ciphertext', `field ${i} overruns the buffer`);
    out.push(b.subarray(o, o + len));
    o += len;
  }
  if (o !== b.length) throw new SecAggError('bad-ciphertext', `${b.length - o} trailing bytes`);
  return out;
}

export function decodeUtf8(b: Uint8Array): string {
  try {
    return dec.decode(b);
  } catch {
    throw new SecAggError('bad-ciphertext', 'field is not valid UTF-8');
  }
}

export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let d = 0;
  for (let i = 0; i < a.length; i++) d |= a[i] ^ b[i];
  return d === 0;
}

export function isBytes(x: unknown, length?: number): x is Uint8Array {
  return x instanceof Uint8Array && (length === undefined || x.length === length);
}
