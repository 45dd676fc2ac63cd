/**
 * What the partitioners split: cases (volumes), each with per-class pixel counts and optionally the
 * scanner it came from. Splitting by case (never by slice) keeps a patient on one site.
 */
import { selectCases as selectCaseSet, type SliceDataset } from '../../site-agent/data/index.ts';

export interface PartitionItem {
  readonly id: string;
  /** Pixel (voxel) count per class; index 0 is background. */
  readonly classCounts: readonly number[];
  readonly scanner?: string;
}

/** A partition: for each site, the indices of its items. */
export type Partition = number[][];

/** Thrown for impossible requests (more sites than items, alpha <= 0, ...). */
export class PartitionError extends Error {
  readonly code = 'INVALID_PARTITION' as const;
  constructor(message: string) {
    super(message);
    this.name = 'PartitionError';
  }
}

/** One item per case of a SliceDataset (slices grouped by caseId, in first-seen order). */
export function itemsFromSliceDataset(ds: SliceDataset, scanner?: string): PartitionItem[] {
  const px = ds.height * ds.width;
  const byCase = new Map<string, number[]>();
  for (let s = 0; s < ds.n; s++) {
    let counts = byCase.get(ds.caseIds[s]);
    if (counts === undefined) {
      counts = new Array<number>(ds.numClasses).fill(0);
      byCase.set(ds.caseIds[s], counts);
    }
    const off = s * px;
    for (let i = 0; i < px; i++) counts[ds.labels[off + i]]++;
  }
  return [...byCase.entries()].map(([id, classCounts]) => ({ id, classCounts, ...(scanner !== undefined ? { scanner } : {}) }));
}

/** The slices of the chosen cases, as a new dataset (dataset order). */
export function selectCases(ds: SliceDataset, caseIds: readonly string[]): SliceDataset {
  return selectCaseSet(ds, new Set(caseIds));
}

/** Splits a dataset into per-site datasets following a partition of `itemsFromSliceDataset(ds)`. */
export function applyPartition(ds: SliceDataset, items: readonly PartitionItem[], partition: Partition): SliceDataset[] {
  return partition.map((site) => selectCases(ds, site.map((i) => items[i].id)));
}
