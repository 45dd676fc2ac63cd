/**
 * The one call a site agent makes: a dataset folder -> SliceDataset (+ provenance to write predictions back);
 * and its label-free twin for a new hospital's scans: a folder -> ImageSlices.
 */
import type { ImageSlices } from '../slice-dataset.ts';
import { loadDatasetCases, type LoadCasesOptions, type LoadedDataset } from './load-cases.ts';
import { loadImageCases, type LoadedImages, type LoadImagesOptions } from './load-images.ts';
import { volumesToImageSlices, volumesToSliceDataset, type CaseSlices, type PreprocessOptions, type PreprocessResult } from './preprocess.ts';

export interface LoadSiteDatasetOptions extends LoadCasesOptions, PreprocessOptions {}

export interface SiteDataset extends PreprocessResult {
  readonly loaded: LoadedDataset;
  /** Class index -> label code in the dataset's files; write predictions back with writePrediction(..., labelCodes). */
  readonly labelCodes?: readonly number[];
}

function skippedNote(problems: readonly { caseId: string }[]): string[] {
  return problems.length > 0 ? [`skipped ${new Set(problems.map((p) => p.caseId)).size} bad case(s)`] : [];
}

/**
 * @example
 * const { dataset, loaded } = await loadSiteDataset('/data/site1', { size: 64, axis: 2, skipBad: true });
 * for (const p of loaded.problems) console.warn(`skipped ${p.file}: ${p.message}`);
 */
export async function loadSiteDataset(dir: string, opts: LoadSiteDatasetOptions): Promise<SiteDataset> {
  const loaded = await loadDatasetCases(dir, opts);
  const pre = volumesToSliceDataset(
    loaded.cases.map((c) => ({ id: c.id, image: c.channels[0], ...(c.channels.length > 1 ? { channels: c.channels } : {}), label: c.label, dims: c.image.dims, spacing: c.image.spacing })),
    // With listed labels, every listed class counts, present in these cases or not.
    { ...opts, ...(opts.numClasses === undefined && loaded.labelCodes ? { numClasses: loaded.labelCodes.length } : {}) },
  );
  return { ...pre, warnings: [...skippedNote(loaded.problems), ...pre.warnings], loaded, ...(loaded.labelCodes ? { labelCodes: loaded.labelCodes } : {}) };
}

export interface LoadImageSlicesOptions extends LoadImagesOptions, PreprocessOptions {}

export interface UnlabeledSiteDataset {
  readonly dataset: ImageSlices;
  readonly cases: readonly CaseSlices[];
  readonly warnings: readonly string[];
  readonly loaded: LoadedImages;
}

/**
 * Every image of a folder, labelled or not, sliced and normalised as `loadSiteDataset` does; label files are never
 * opened, so a folder of images, a Decathlon `imagesTs/` alone or a dataset whose labels are absent all load.
 * @example
 * const { dataset } = await loadUnlabeledSiteDataset('/data/new-scanner', { size: 64, skipBad: true });
 */
export async function loadUnlabeledSiteDataset(dir: string, opts: LoadImageSlicesOptions): Promise<UnlabeledSiteDataset> {
  const loaded = await loadImageCases(dir, opts);
  const pre = volumesToImageSlices(
    loaded.cases.map((c) => ({ id: c.id, image: c.channels[0], ...(c.channels.length > 1 ? { channels: c.channels } : {}), dims: c.image.dims, spacing: c.image.spacing })),
    opts,
  );
  return { ...pre, warnings: [...skippedNote(loaded.problems), ...pre.warnings], loaded };
}
