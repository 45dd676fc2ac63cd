/**
 * Finding the images of a dataset folder whatever its labels: what a new hospital adapts on. Labels are neither
 * needed nor read; a case is an image file.
 * - Decathlon / nnU-Net (`dataset.json`, or an `imagesTr/` or `imagesTs/` folder): every image in `imagesTr/` and
 *   `imagesTs/` (nnU-Net's `X_0000` first channel names the case `X`; its other channels are not cases).
 * - A folder with `images/`: every image in it.
 * - Otherwise every image in the folder itself, except files named like labels (`X_label`, `_seg`, `_mask`, ...).
 */
import { readdir, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { DatasetError, type FileProblem } from './dataset-error.ts';
import type { CaseFiles } from './discover-dataset.ts';

export interface DiscoveredImages {
  readonly root: string;
  readonly layout: 'decathlon' | 'images' | 'flat';
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
    } else cases.push({ id, image: file });
  }
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
  } else {
    layout = 'flat';
    await addFolder(root, { nnunet: false, skipLabels: true }, cases, problems);
  }
  if (cases.length === 0 && problems.length === 0) {
    const where = layout === 'decathlon' ? 'imagesTr/ or imagesTs/' : layout === 'images' ? 'images/' : 'the folder';
    throw new DatasetError('NOT_A_DATASET', root, `no NIfTI images (.nii, .nii.gz) in ${where}`);
  }
  return { root, layout, cases, problems };
}
