export { checkPath, formatCheckReport, type CheckReport, type FileCheck } from './check-path.ts';
export { formatInspection, inspectNifti, type NiftiInspection } from './inspect-nifti.ts';
export { intArg, registerDataCommands } from './register-data-commands.ts';
export { formatImportReport, importDicom, type ImportedSeries, type ImportReport } from './import-dicom.ts';
