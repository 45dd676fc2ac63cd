/**
 * Reading the images of a dataset folder without labels (see discover-images.ts): a new hospital's scans.
 * Bad images are collected, never thrown one by one; with `skipBad` they are skipped and reported.
 */
import type { NiftiVolume, ReadNiftiOptions } from '../nifti/read-nifti.ts';
import { DatasetError, type FileProblem } from './dataset-error.ts';
import { discoverImages, type DiscoveredImages } from './discover-images.ts';
import { readCaseImage } from './read-case-image.ts';

export interface LoadedImageCase {
  readonly id: string;
  /** Geometry of the case (channel 0 as `data`); predictions are written back with it. */
  readonly image: NiftiVolume;
  /** Canonical-order input channels (one for a 3D image or a DICOM series). */
  readonly channels: readonly Float32Array[];
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
  /** Input channels per case (all cases agree). */
  readonly channels: number;
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
    const r = await readCaseImage(c, opts);
    if (r.ok) cases.push({ id: c.id, image: r.value.volume, channels: r.value.channels });
    else problems.push(...r.problems);
  }
  if (problems.length > 0 && !opts.skipBad) {
    throw new DatasetError('BAD_FILES', ds.root, `${problems.length} unreadable image(s); fix them or pass skipBad`, problems);
  }
  if (cases.length === 0) throw new DatasetError('NO_CASES', ds.root, 'no readable images', problems);
  if (new Set(cases.map((c) => c.channels.length)).size > 1) {
    const list = cases.map((c) => `${c.id}: ${c.channels.length}`).join(', ');
    throw new DatasetError('BAD_FILES', ds.root, `images have different numbers of input channels (${list}); every case needs the same channels in the same order`);
  }
  return { dataset: ds, cases, channels: cases[0].channels.length, problems };
}
