/** DICOM transfer syntaxes (PS3.5 Annex A / PS3.6 Annex A): which ones are read, and the names of the others. */

/** Uncompressed (or deflated) syntaxes whose pixel data is read as is. */
export const NATIVE_SYNTAXES: Readonly<Record<string, { readonly name: string; readonly bigEndian: boolean }>> = {
  '1.2.840.10008.1.2': { name: 'Implicit VR Little Endian', bigEndian: false },
  '1.2.840.10008.1.2.1': { name: 'Explicit VR Little Endian', bigEndian: false },
  '1.2.840.10008.1.2.1.99': { name: 'Deflated Explicit VR Little Endian', bigEndian: false },
  '1.2.840.10008.1.2.2': { name: 'Explicit VR Big Endian', bigEndian: true },
};

/** RLE Lossless: decoded here (PS3.5 Annex G). */
export const RLE_LOSSLESS = '1.2.840.10008.1.2.5';

/** Compressed syntaxes that are refused, by name (convert them with dcm2niix or gdcmconv first). */
const COMPRESSED: Readonly<Record<string, string>> = {
  '1.2.840.10008.1.2.4.50': 'JPEG Baseline (Process 1)',
  '1.2.840.10008.1.2.4.51': 'JPEG Extended (Process 2 & 4)',
  '1.2.840.10008.1.2.4.57': 'JPEG Lossless, Non-Hierarchical (Process 14)',
  '1.2.840.10008.1.2.4.70': 'JPEG Lossless, Non-Hierarchical, First-Order Prediction (Process 14, SV1)',
  '1.2.840.10008.1.2.4.80': 'JPEG-LS Lossless',
  '1.2.840.10008.1.2.4.81': 'JPEG-LS Lossy (Near-Lossless)',
  '1.2.840.10008.1.2.4.90': 'JPEG 2000 Image Compression (Lossless Only)',
  '1.2.840.10008.1.2.4.91': 'JPEG 2000 Image Compression',
  '1.2.840.10008.1.2.4.92': 'JPEG 2000 Part 2 Multi-component (Lossless Only)',
  '1.2.840.10008.1.2.4.93': 'JPEG 2000 Part 2 Multi-component',
  '1.2.840.10008.1.2.4.100': 'MPEG2 Main Profile / Main Level',
  '1.2.840.10008.1.2.4.102': 'MPEG-4 AVC/H.264 High Profile',
  '1.2.840.10008.1.2.4.201': 'High-Throughput JPEG 2000 (Lossless Only)',
  '1.2.840.10008.1.2.4.202': 'High-Throughput JPEG 2000 with RPCL Options (Lossless Only)',
  '1.2.840.10008.1.2.4.203': 'High-Throughput JPEG 2000',
};

/** The standard's name of a transfer syntax (a transfer syntax UID is a constant of the standard, not patient data). */
export function transferSyntaxName(uid: string): string {
  return NATIVE_SYNTAXES[uid]?.name ?? (uid === RLE_LOSSLESS ? 'RLE Lossless' : COMPRESSED[uid]) ?? 'an unknown transfer syntax';
}
