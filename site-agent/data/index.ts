export { sliceRange, type SliceDataset } from './slice-dataset.ts';
export { resizeBilinear, resizeNearest } from './resize.ts';
export * as nifti from './nifti/index.ts';
export * as dataset from './dataset/index.ts';
export * as dicom from './dicom/index.ts';
export { registerDataCommands } from './cli/index.ts';
