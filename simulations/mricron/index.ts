export {
  buildMricronDatasets,
  DEFAULT_MRICRON_DIR,
  DEFAULT_SITE_SCANNERS,
  locateMricronTemplates,
  MricronError,
  type BuildMricronOptions,
  type BuiltSite,
  type MricronErrorCode,
} from './build-mricron.ts';
export { buildLabels, LABEL_NAMES, type MricronLabelScheme } from './mricron-labels.ts';
