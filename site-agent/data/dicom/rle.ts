/**
 * DICOM RLE Lossless decoding (PS3.5 Annex G): a 64-byte header (segment count and up to 15 offsets), then one
 * PackBits-coded segment per byte plane, most significant plane first. Output: little-endian pixel bytes.
 */
import { DicomError } from './dicom-error.ts';

/** Decodes one frame of `pixels` grayscale samples of `bytesPer` bytes. */
export function decodeRleFrame(file: string, frame: Uint8Array, pixels: number, bytesPer: number): Uint8Array {
  if (frame.length < 64) throw new DicomError('CORRUPT', file, `RLE frame of ${frame.length} bytes is shorter than its 64-byte header`);
  const dv = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
  const segments = dv.getUint32(0, true);
  if (segments !== bytesPer) throw new DicomError('CORRUPT', file, `RLE frame has ${segments} segments, ${bytesPer}-byte grayscale pixels need ${bytesPer}`);
  const out = new Uint8Array(pixels * bytesPer);
  for (let s = 0; s < segments; s++) {
    const start = dv.getUint32(4 + 4 * s, true);
    const end = s + 1 < segments ? dv.getUint32(8 + 4 * s, true) : frame.length;
    if (start < 64 || end > frame.length || end < start) throw new DicomError('CORRUPT', file, `RLE segment ${s} offsets ${start}..${end} are outside the frame`);
    // Segment s holds byte (bytesPer - 1 - s) of each little-endian sample.
    const plane = bytesPer - 1 - s;
    let o = 0;
    let p = start;
    while (o < pixels && p < end) {
      const n = frame[p++];
      if (n < 128) {
        for (let k = 0; k <= n && o < pixels; k++) out[(o++) * bytesPer + plane] = frame[p++];
      } else if (n > 128) {
        const v = frame[p++];
        for (let k = 0; k < 257 - n && o < pixels; k++) out[(o++) * bytesPer + plane] = v;
      }
    }
    if (o < pixels) throw new DicomError('CORRUPT', file, `RLE segment ${s} decodes to ${o} of ${pixels} pixels`);
  }
  return out;
}
