/**
 * Finding the images of a dataset folder whatever its labels: what a new hospital adapts on. Labels are neither
 * needed nor read; a case is an image file.
 * - Decathlon / nnU-Net (`dataset.json`, or an `imagesTr/` or `imagesTs/` folder): every image in `imagesTr/` and
 *   `imagesTs/` (nnU-Net's `X_0000` first channel names the case `X`; `X_0001`, ... are its further input channels).
 * - A folder with `images/`: every image in it; a sub-folder `images/X/` is case X given as one DICOM series.
 * - Otherwise every image in the folder itself, except files named like labels (`X_label`, `_seg`, `_mask`, ...).
 * - A folder with no NIfTI image in it is read as a bare DICOM folder (a PACS export, a folder of series folders):
 *   every DICOM image series under it is a case, named `series-001`, `series-002`, ... in the order
 *   `fedsfda data import-dicom` numbers them (never by header text).
 */
import { readdir, stat } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { DicomError } from '../dicom/dicom-error.ts';
import { listDicomSeries } from '../dicom/dicom-series.ts';
import { DatasetError, type FileProblem } from './dataset-error.ts';
import { channelSiblings, type CaseFiles } from './discover-dataset.ts';

export interface DiscoveredImages {
  readonly root: string;
  readonly layout: 'decathlon' | 'images' | 'flat' | 'dicom';
  /** One entry per image, without `label`. */
  readonly cases: readonly CaseFiles[];
  /** Entries that cannot be used as images (directories named like NIfTI files, duplicate case names). */
  readonly problems: readonly FileProblem[];
}

const NIFTI_EXT = /\.nii(\.gz)?$/i;
const LABEL_SUFFIX = /_(label|labels|seg|mask|gt)$/i;
/** nnU-Net channel suffix: `_0000` is the first channel, `_0001`... further channels of the same case. */
const CHANNEL_SUFFIX = /_(\d{4})$/;

async function kind(p: string): Promise<'file' | 'dir' | 'none'> {
  try {
    return (await stat(p)).isDirectory() ? 'dir' : 'file';
  } catch {
    return 'none';
  }
}

async function listNifti(dir: string): Promise<string[]> {
  if ((await kind(dir)) !== 'dir') return [];
  return (await readdir(dir)).filter((f) => NIFTI_EXT.test(f) && !f.startsWith('.')).sort();
}

/** Adds the images of one folder; `nnunet` names cases by their `_0000` file and skips other channels. */
async function addFolder(dir: string, opts: { nnunet: boolean; skipLabels: boolean }, cases: CaseFiles[], problems: FileProblem[]): Promise<void> {
  const files = await listNifti(dir);
  const channelled = opts.nnunet && files.some((f) => /_0000$/.test(f.replace(NIFTI_EXT, '')));
  for (const f of files) {
    let id = f.replace(NIFTI_EXT, '');
    if (opts.skipLabels && LABEL_SUFFIX.test(id)) continue;
    if (channelled) {
      const m = CHANNEL_SUFFIX.exec(id);
      if (m === null || m[1] !== '0000') continue;
      id = id.slice(0, -5);
    }
    const file = join(dir, f);
    if ((await kind(file)) === 'dir') {
      problems.push({ file, caseId: id, role: 'image', code: 'NOT_A_FILE', message: 'is a directory, not a NIfTI file' });
    } else if (cases.some((c) => c.id === id)) {
      problems.push({ file, caseId: id, role: 'image', code: 'DUPLICATE_CASE', message: `a second image for case ${id} (first: ${cases.find((c) => c.id === id)?.image})` });
    } else {
      const channelFiles = channelled ? await channelSiblings(file) : [file];
      cases.push({ id, image: file, ...(channelFiles.length > 1 ? { channelFiles } : {}) });
    }
  }
}

/** Sub-folders of `images/`: one case each, given as a folder holding one DICOM series. */
async function addDicomCaseFolders(dir: string, cases: CaseFiles[], problems: FileProblem[]): Promise<void> {
  const dirs = (await readdir(dir, { withFileTypes: true })).filter((e) => e.isDirectory() && !e.name.startsWith('.') && !NIFTI_EXT.test(e.name));
  for (const id of dirs.map((e) => e.name).sort()) {
    const image = join(dir, id);
    const first = cases.find((c) => c.id === id);
    if (first !== undefined) problems.push({ file: image, caseId: id, role: 'image', code: 'DUPLICATE_CASE', message: `a second image for case ${id} (first: ${first.image})` });
    else cases.push({ id, image });
  }
}

/** Every DICOM image series under a bare folder as a case; throws NOT_A_DATASET when there is none. */
async function dicomSeriesCases(root: string): Promise<CaseFiles[]> {
  let listed: Awaited<ReturnType<typeof listDicomSeries>>;
  try {
    listed = await listDicomSeries(root);
  } catch (e) {
    if (e instanceof DicomError) throw new DatasetError('NOT_A_DATASET', root, e.message.replace(`${e.file}: `, ''));
    throw e;
  }
  const { series, skipped } = listed;
  if (series.length === 0) {
    const why = skipped.length > 0 ? `; ${skipped.length} file(s) are not usable DICOM images, the first: ${skipped[0].message} [${skipped[0].code}]` : '';
    throw new DatasetError('NOT_A_DATASET', root, `no NIfTI images (.nii, .nii.gz) and no DICOM image series in the folder${why}`);
  }
  const width = Math.max(3, String(series.length).length);
  return series.map((s) => ({ id: `series-${String(s.index).padStart(width, '0')}`, image: dirname(s.files[0]), dicomFiles: s.files }));
}

/** Lists the images of a dataset folder (see the file comment for the layouts). */
export async function discoverImages(dir: string): Promise<DiscoveredImages> {
  const root = resolve(dir);
  const k = await kind(root);
  if (k !== 'dir') throw new DatasetError('NOT_A_DATASET', root, k === 'none' ? 'no such folder' : 'is a file, not a dataset folder');
  const cases: CaseFiles[] = [];
  const problems: FileProblem[] = [];
  let layout: DiscoveredImages['layout'];
  const decathlon = (await kind(join(root, 'dataset.json'))) === 'file' || (await kind(join(root, 'imagesTr'))) === 'dir' || (await kind(join(root, 'imagesTs'))) === 'dir';
  if (decathlon) {
    layout = 'decathlon';
    for (const sub of ['imagesTr', 'imagesTs']) await addFolder(join(root, sub), { nnunet: true, skipLabels: false }, cases, problems);
  } else if ((await kind(join(root, 'images'))) === 'dir') {
    layout = 'images';
    await addFolder(join(root, 'images'), { nnunet: false, skipLabels: false }, cases, problems);
    await addDicomCaseFolders(join(root, 'images'), cases, problems);
  } else {
    layout = 'flat';
    await addFolder(root, { nnunet: false, skipLabels: true }, cases, problems);
    if (cases.length === 0 && problems.length === 0 && (await listNifti(root)).length === 0) {
      return { root, layout: 'dicom', cases: await dicomSeriesCases(root), problems };
    }
  }
  if (cases.length === 0 && problems.length === 0) {
    const where = layout === 'decathlon' ? 'imagesTr/ or imagesTs/' : layout === 'images' ? 'images/ (and no DICOM case folders)' : 'the folder';
    throw new DatasetError('NOT_A_DATASET', root, `no NIfTI images (.nii, .nii.gz) in ${where}`);
  }
  return { root, layout, cases, problems };
}
