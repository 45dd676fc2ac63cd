/**
 * Reading and validating the cases of a discovered dataset: every image/label pair is read, and the pair
 * must agree on canonical dims, spacing and world placement; label values must be integers in the legal set.
 * Bad cases are collected (never thrown one by one), so a run stops before training with the full list,
 * or with `skipBad` skips them and reports them.
 */
import { classCodes, labelValues, toLabelMap } from '../nifti/label-map.ts';
import { NiftiError } from '../nifti/nifti-error.ts';
import { readNifti, type NiftiVolume, type ReadNiftiOptions } from '../nifti/read-nifti.ts';
import { readCaseImage } from './read-case-image.ts';
import { DatasetError, type FileProblem } from './dataset-error.ts';
import { discoverDataset, type CaseFiles, type DiscoveredDataset } from './discover-dataset.ts';

export interface LoadedCase {
  readonly id: string;
  /** Geometry of the case (channel 0 as `data`); predictions are written back with it. */
  readonly image: NiftiVolume;
  /** Canonical-order input channels (one for a 3D image). */
  readonly channels: readonly Float32Array[];
  /** Canonical-order class map on the image's grid (class indices; see LoadedDataset.labelCodes). */
  readonly label: Uint8Array;
  /** Class indices present. */
  readonly labelValues: readonly number[];
}

export interface LoadCasesOptions extends ReadNiftiOptions {
  /**
   * Legal label codes; default: the dataset.json labels (Decathlon) or any integer 0..255. Listed codes may be
   * sparse (an atlas's region numbers): class k is the k-th smallest code (LoadedDataset.labelCodes).
   */
  allowedLabels?: readonly number[];
  /** Relative spacing tolerance between image and label (default 1e-3). */
  spacingTolerance?: number;
  /** Skip bad cases and report them instead of failing the whole load. */
  skipBad?: boolean;
  /** Read at most this many (good) cases, in listing order (default all). */
  maxCases?: number;
}

export interface LoadedDataset {
  readonly dataset: DiscoveredDataset;
  readonly cases: readonly LoadedCase[];
  /** Input channels per case (all cases agree; the dataset's modality list when it has one). */
  readonly channels: number;
  /** Channel names (dataset.json modality / channel_names), when given. */
  readonly modalities?: readonly string[];
  /** Class index -> label code stored in the files (undefined: class = stored value, 0..255). */
  readonly labelCodes?: readonly number[];
  /** Every problem found (with skipBad, these cases were skipped). */
  readonly problems: readonly FileProblem[];
}

function problemFrom(e: unknown, c: CaseFiles, role: 'image' | 'label'): FileProblem {
  if (e instanceof NiftiError) return { file: e.file, caseId: c.id, role, code: e.code, message: e.message.replace(`${e.file}: `, '').replace(/ \[[A-Z_]+\]$/, '') };
  throw e;
}

/** Reads and cross-checks one image/label pair; returns the case or its problems. */
export async function loadCase(
  c: CaseFiles,
  opts: LoadCasesOptions = {},
  codes?: readonly number[],
  expectedChannels?: number,
): Promise<{ ok: true; value: LoadedCase } | { ok: false; problems: FileProblem[] }> {
  const problems: FileProblem[] = [];
  let image: NiftiVolume | undefined;
  let channels: readonly Float32Array[] = [];
  let label: NiftiVolume | undefined;
  const img = await readCaseImage(c, opts, expectedChannels);
  if (img.ok) {
    image = img.value.volume;
    channels = img.value.channels;
  } else problems.push(...img.problems);
  if (c.label === undefined) {
    problems.push({ file: c.image, caseId: c.id, role: 'label', code: 'MISSING_LABEL', message: 'case has no label file' });
    return { ok: false, problems };
  }
  try {
    // Label maps are never 4D; NaN in a label map is always an error.
    label = await readNifti(c.label, { maxBytes: opts.maxBytes });
  } catch (e) {
    problems.push(problemFrom(e, c, 'label'));
  }
  let labels: Uint8Array | undefined;
  if (label !== undefined) {
    try {
      labels = toLabelMap(c.label, label.data, codes);
    } catch (e) {
      problems.push(problemFrom(e, c, 'label'));
    }
  }
  if (image !== undefined && label !== undefined) {
    const tol = opts.spacingTolerance ?? 1e-3;
    if (image.dims.some((d, i) => d !== label.dims[i])) {
      problems.push({ file: c.label, caseId: c.id, role: 'label', code: 'DIMS_MISMATCH', message: `label dims ${label.dims.join('x')} differ from image dims ${image.dims.join('x')}` });
    } else if (image.spacing.some((s, i) => Math.abs(s - label.spacing[i]) > tol * Math.max(s, label.spacing[i]))) {
      problems.push({
        file: c.label,
        caseId: c.id,
        role: 'label',
        code: 'SPACING_MISMATCH',
        message: `label spacing ${label.spacing.map((s) => s.toFixed(4)).join('x')} differs from image spacing ${image.spacing.map((s) => s.toFixed(4)).join('x')} mm`,
      });
    } else {
      // Same grid in the world: the canonical voxel (0,0,0) must be at the same place (half a voxel tolerance).
      const off = [0, 1, 2].map((i) => Math.abs(image!.affine[i][3] - label.affine[i][3]));
      if (off.some((o, i) => o > 0.5 * image!.spacing[i])) {
        problems.push({ file: c.label, caseId: c.id, role: 'label', code: 'GEOMETRY_MISMATCH', message: `label origin is ${off.map((o) => o.toFixed(2)).join(', ')} mm away from the image origin` });
      }
    }
  }
  if (problems.length > 0 || image === undefined || labels === undefined) return { ok: false, problems };
  return { ok: true, value: { id: c.id, image, channels, label: labels, labelValues: labelValues(labels) } };
}

/** The sorted label codes of a dataset (explicit list, else dataset.json's labels); undefined when not listed. */
export function labelCodesOf(ds: DiscoveredDataset, explicit?: readonly number[]): number[] | undefined {
  const listed = explicit ?? (ds.labelNames ? [...ds.labelNames.keys()] : undefined);
  if (listed === undefined) return undefined;
  try {
    return classCodes(listed);
  } catch (e) {
    throw new DatasetError(explicit ? 'INVALID_OPTIONS' : 'BAD_DATASET_JSON', ds.root, `labels: ${(e as Error).message}; merge regions into fewer classes (a coarser labels list and labelMap) to train on them`);
  }
}

/**
 * Loads every training case of a dataset folder. Without `skipBad`, throws DatasetError('BAD_FILES')
 * listing all problems (before any training starts); with it, returns the good cases and the problems.
 */
export async function loadDatasetCases(dir: string, opts: LoadCasesOptions = {}): Promise<LoadedDataset> {
  const ds = await discoverDataset(dir);
  const codes = labelCodesOf(ds, opts.allowedLabels);
  const problems: FileProblem[] = [...ds.problems];
  const cases: LoadedCase[] = [];
  for (const c of ds.training) {
    if (opts.maxCases !== undefined && cases.length >= opts.maxCases) break;
    const r = await loadCase(c, opts, codes, ds.modalities?.length);
    if (r.ok) cases.push(r.value);
    else problems.push(...r.problems);
  }
  if (problems.length > 0 && !opts.skipBad) {
    throw new DatasetError('BAD_FILES', ds.root, `${problems.length} problem(s) in ${new Set(problems.map((p) => p.caseId)).size} case(s); fix them or pass skipBad (--skip-bad)`, problems);
  }
  if (cases.length === 0) throw new DatasetError('NO_CASES', ds.root, 'no usable training cases', problems);
  const counts = new Set(cases.map((c) => c.channels.length));
  if (counts.size > 1) {
    const list = cases.map((c) => `${c.id}: ${c.channels.length}`).join(', ');
    throw new DatasetError('BAD_FILES', ds.root, `cases have different numbers of input channels (${list}); every case needs the same channels in the same order`);
  }
  const channels = cases[0].channels.length;
  return { dataset: ds, cases, problems, channels, ...(ds.modalities ? { modalities: ds.modalities } : {}), ...(codes ? { labelCodes: codes } : {}) };
}
