/**
 * Reading the images of a dataset folder without labels (see discover-images.ts): a new hospital's scans.
 * Bad images are collected, never thrown one by one; with `skipBad` they are skipped and reported.
 */
import { NiftiError } from '../nifti/nifti-error.ts';
import { readNifti, type NiftiVolume, type ReadNiftiOptions } from '../nifti/read-nifti.ts';
import { DatasetError, type FileProblem } from './dataset-error.ts';
import { discoverImages, type DiscoveredImages } from './discover-images.ts';

export interface LoadedImageCase {
  readonly id: string;
  readonly image: NiftiVolume;
}

export interface LoadImagesOptions extends ReadNiftiOptions {
  /** Skip unreadable images and report them instead of failing the whole load. */
  skipBad?: boolean;
  /** Read at most this many (good) images, in listing order (default all). */
  maxCases?: number;
}

export interface LoadedImages {
  readonly dataset: DiscoveredImages;
  readonly cases: readonly LoadedImageCase[];
  /** Every problem found (with skipBad, these images were skipped). */
  readonly problems: readonly FileProblem[];
}

/**
 * Loads every image of a dataset folder, labelled or not. Without `skipBad`, throws DatasetError('BAD_FILES')
 * listing all problems; throws DatasetError('NO_CASES') when no image could be read.
 */
export async function loadImageCases(dir: string, opts: LoadImagesOptions = {}): Promise<LoadedImages> {
  const ds = await discoverImages(dir);
  const problems: FileProblem[] = [...ds.problems];
  const cases: LoadedImageCase[] = [];
  for (const c of ds.cases) {
    if (opts.maxCases !== undefined && cases.length >= opts.maxCases) break;
    try {
      cases.push({ id: c.id, image: await readNifti(c.image, opts) });
    } catch (e) {
      if (!(e instanceof NiftiError)) throw e;
      problems.push({ file: e.file, caseId: c.id, role: 'image', code: e.code, message: e.message.replace(`${e.file}: `, '').replace(/ \[[A-Z_]+\]$/, '') });
    }
  }
  if (problems.length > 0 && !opts.skipBad) {
    throw new DatasetError('BAD_FILES', ds.root, `${problems.length} unreadable image(s); fix them or pass skipBad`, problems);
  }
  if (cases.length === 0) throw new DatasetError('NO_CASES', ds.root, 'no readable images', problems);
  return { dataset: ds, cases, problems };
}
