/** Byte helpers of the secagg primitives: the generic ones (protocol/common/bytes.ts) plus secagg's typed refusals. */
import { concatBytes as concatAll, decodeUtf8Strict } from '../common/index.ts';
import { SecAggError } from './errors.ts';

export { bytesEqual, isBytes, lengthPrefixed, utf8 } from '../common/index.ts';

/** Concatenation of a list (the generic `concatBytes` takes the parts as arguments). */
export function concatBytes(parts: readonly Uint8Array[]): Uint8Array {
  return concatAll(...parts);
}

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
  const s = decodeUtf8Strict(b);
  if (s === undefined) throw new SecAggError('bad-ciphertext', 'field is not valid UTF-8');
  return s;
}
