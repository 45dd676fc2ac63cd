export { generateSiteData, MAX_PHANTOM_PIXELS, type GenerateSiteDataOptions } from './generate-site-data.ts';
export { generatePhantomVolume, type PhantomVolume, type PhantomVolumeOptions } from './phantom-volume.ts';
export {
  IntensityMapSchema,
  resolveScannerShift,
  SCANNER_PRESET_NAMES,
  SCANNER_PRESETS,
  ScannerPresetNameSchema,
  ScannerShiftError,
  ScannerShiftOrPresetSchema,
  ScannerShiftSchema,
  type IntensityMap,
  type ScannerPresetName,
  type ScannerShift,
  type ScannerShiftOrPreset,
} from './scanner-shift.ts';
export { applyScannerShift, sampleBiasField, type BiasFieldCoefficients } from './apply-scanner-shift.ts';
export { MAX_PHANTOM_CLASSES } from './anatomy.ts';
export { PhantomError } from './phantom-error.ts';
export { writePhantomDatasets, type PhantomDatasetsOptions } from './write-phantom-datasets.ts';
export { gaussianBlur2d } from '../../site-agent/data/index.ts';
