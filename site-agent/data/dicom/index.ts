export { DicomError, type DicomErrorCode } from './dicom-error.ts';
export { decodeDicomSlice, readDicomSlice, type DicomSlice } from './dicom-slice.ts';
export {
  assembleDicomSeries,
  listDicomSeries,
  readDicomFiles,
  readDicomSeries,
  scanDicomFolder,
  type DicomReadOptions,
  type DicomScan,
  type DicomSeries,
  type DicomSeriesFiles,
  type SkippedDicomFile,
} from './dicom-series.ts';
export { NATIVE_SYNTAXES, RLE_LOSSLESS, transferSyntaxName } from './transfer-syntax.ts';
