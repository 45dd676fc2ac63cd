import type { DicomErrorCode } from '../dicom/dicom-error.ts';
import type { NiftiErrorCode } from '../nifti/nifti-error.ts';

/** Per-file problems found while checking or loading a dataset: NIfTI failures plus pairing/consistency checks. */
export type FileProblemCode =
  | NiftiErrorCode
  | DicomErrorCode
  | 'CHANNELS_MISMATCH'
  | 'MISSING_LABEL'
  | 'MISSING_FILE'
  | 'OUTSIDE_DATASET'
  | 'DIMS_MISMATCH'
  | 'SPACING_MISMATCH'
  | 'GEOMETRY_MISMATCH'
  | 'DUPLICATE_CASE';

export interface FileProblem {
  readonly file: string;
  readonly caseId: string;
  readonly role: 'image' | 'label';
  readonly code: FileProblemCode;
  readonly message: string;
}

export type DatasetErrorCode = 'NOT_A_DATASET' | 'BAD_DATASET_JSON' | 'NO_CASES' | 'BAD_FILES' | 'INVALID_OPTIONS';

/** A dataset that cannot be used as a whole; `problems` lists every bad file when code is BAD_FILES. */
export class DatasetError extends Error {
  readonly code: DatasetErrorCode;
  readonly path: string;
  readonly problems: readonly FileProblem[];
  constructor(code: DatasetErrorCode, path: string, reason: string, problems: readonly FileProblem[] = []) {
    const list = problems.length > 0 ? `\n${problems.map((p) => `  ${p.file}: ${p.message} [${p.code}]`).join('\n')}` : '';
    super(`${path}: ${reason} [${code}]${list}`);
    this.name = 'DatasetError';
    this.code = code;
    this.path = path;
    this.problems = problems;
  }
}
