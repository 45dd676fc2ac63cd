/**
 * Gzip decompression that never inflates more than it was allowed to (a gzip bomb or a header
 * promising gigabytes is refused while streaming, before the memory is spent) and that reports a
 * truncated or corrupt stream as a typed error instead of a stack trace.
 */
import { Gunzip } from 'fflate';
import { NiftiError } from './nifti-error.ts';

const CHUNK = 1 << 16;

export function isGzip(bytes: Uint8Array): boolean {
  return bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b;
}

/**
 * Inflates until `stopAfter` bytes are available or the stream ends, and returns at most `stopAfter` bytes.
 * Two different numbers: `stopAfter` is where the caller's interest ends (the end of the chosen volume; bytes
 * after it, such as later volumes of a 4D file, are never an error), `maxBytes` is the limit on what may be
 * inflated to get there (TOO_LARGE only when reaching the stop point, or the end of the stream, needs more).
 * Throws CORRUPT_GZIP / TRUNCATED for a bad stream.
 * `partial`: `gz` is only the beginning of the file (a peek), so its end is not the end of the stream.
 */
export function boundedGunzip(file: string, gz: Uint8Array, maxBytes: number, stopAfter = Infinity, partial = false): Uint8Array {
  const chunks: Uint8Array[] = [];
  const keep = Math.min(stopAfter, maxBytes);
  let kept = 0;
  let total = 0;
  let ended = false;
  let overflow = false;
  const g = new Gunzip((chunk, final) => {
    total += chunk.length;
    if (final) ended = true;
    const take = Math.min(chunk.length, keep - kept);
    if (take > 0) {
      chunks.push(take === chunk.length ? chunk : chunk.subarray(0, take));
      kept += take;
    }
    // Output past the stop point is simply not needed; output past the limit before the stop point is a bomb.
    if (total > maxBytes && kept < stopAfter) overflow = true;
  });
  try {
    for (let off = 0; off < gz.length; off += CHUNK) {
      const end = Math.min(gz.length, off + CHUNK);
      g.push(gz.subarray(off, end), end === gz.length && !partial);
      if (overflow) {
        throw new NiftiError('TOO_LARGE', file, `decompressed data exceeds the limit of ${maxBytes} bytes`);
      }
      if (kept >= stopAfter) break;
    }
  } catch (e) {
    if (e instanceof NiftiError) throw e;
    const msg = e instanceof Error ? e.message : String(e);
    if (/unexpected EOF/i.test(msg)) throw new NiftiError('TRUNCATED', file, `gzip stream ends early (${msg})`);
    throw new NiftiError('CORRUPT_GZIP', file, `gzip stream is corrupt (${msg})`);
  }
  if (!ended && kept < stopAfter) throw new NiftiError('TRUNCATED', file, 'gzip stream ends early');
  const out = new Uint8Array(kept);
  let o = 0;
  for (const c of chunks) {
    out.set(c, o);
    o += c.length;
  }
  return out;
}
