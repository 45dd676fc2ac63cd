export { sliceRange, type ImageSlices, type SliceDataset } from './slice-dataset.ts';
export { resizeBilinear, resizeNearest } from './resize.ts';
export { gaussianBlur2d } from './gaussian-blur.ts';
export { splitByCase, selectCases } from './split-by-case.ts';
export {
  DatasetError,
  loadSiteDataset,
  loadUnlabeledSiteDataset,
  readLabelCodes,
  reassembleLabelVolume,
  writeDecathlonDataset,
  writePrediction,
  type CaseSlices,
  type DecathlonCase,
  type SiteDataset,
  type UnlabeledSiteDataset,
} from './dataset/index.ts';
export { NiftiError, readNifti, writeNifti, type NiftiVolume } from './nifti/index.ts';
export * as nifti from './nifti/index.ts';
export * as dataset from './dataset/index.ts';
export * as dicom from './dicom/index.ts';
export { intArg, registerDataCommands } from './cli/index.ts';
