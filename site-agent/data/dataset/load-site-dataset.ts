/**
 * The one call a site agent makes: a dataset folder -> SliceDataset (+ provenance to write predictions back).
 */
import { loadDatasetCases, type LoadCasesOptions, type LoadedDataset } from './load-cases.ts';
import { volumesToSliceDataset, type PreprocessOptions, type PreprocessResult } from './preprocess.ts';

export interface LoadSiteDatasetOptions extends LoadCasesOptions, PreprocessOptions {}

export interface SiteDataset extends PreprocessResult {
  readonly loaded: LoadedDataset;
  /** Class index -> label code in the dataset's files; write predictions back with writePrediction(..., labelCodes). */
  readonly labelCodes?: readonly number[];
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
  const skippedNote = loaded.problems.length > 0 ? [`skipped ${new Set(loaded.problems.map((p) => p.caseId)).size} bad case(s)`] : [];
  return { ...pre, warnings: [...skippedNote, ...pre.warnings], loaded, ...(loaded.labelCodes ? { labelCodes: loaded.labelCodes } : {}) };
}
