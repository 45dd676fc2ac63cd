export { DatasetError, type DatasetErrorCode, type FileProblem, type FileProblemCode } from './dataset-error.ts';
export { discoverDataset, type CaseFiles, type DiscoveredDataset } from './discover-dataset.ts';
export { discoverImages, type DiscoveredImages } from './discover-images.ts';
export { loadCase, loadDatasetCases, type LoadCasesOptions, type LoadedCase, type LoadedDataset } from './load-cases.ts';
export { loadImageCases, type LoadImagesOptions, type LoadedImageCase, type LoadedImages } from './load-images.ts';
export {
  normalizeVolume,
  planeAxes,
  reassembleLabelVolume,
  volumesToImageSlices,
  volumesToSliceDataset,
  type CaseSlices,
  type ImagePreprocessResult,
  type ImageVolumeCase,
  type Normalization,
  type PreprocessOptions,
  type PreprocessResult,
  type VolumeCase,
} from './preprocess.ts';
export {
  loadSiteDataset,
  loadUnlabeledSiteDataset,
  type LoadImageSlicesOptions,
  type LoadSiteDatasetOptions,
  type SiteDataset,
  type UnlabeledSiteDataset,
} from './load-site-dataset.ts';
export { readCaseImage, type CaseImage } from './read-case-image.ts';
export { writeDecathlonDataset, type DecathlonCase, type DecathlonDatasetSpec } from './write-decathlon.ts';
export { writePrediction } from './write-prediction.ts';
export { labelCodesOf } from './load-cases.ts';
export { readLabelCodes } from './label-table.ts';
