/**
 * Training / validation split by case (volume), never by slice: neighbouring slices of one volume are
 * nearly identical, so a slice-level split would leak validation anatomy into training.
 */
import type { SliceDataset } from './slice-dataset.ts';

/** Keeps the slices whose case is in `keep`, in dataset order. */
export function selectCases(ds: SliceDataset, keep: ReadonlySet<string>): SliceDataset {
  const px = ds.height * ds.width;
  const idx: number[] = [];
  ds.caseIds.forEach((id, i) => keep.has(id) && idx.push(i));
  const images = new Float32Array(idx.length * px * ds.channels);
  const labels = new Uint8Array(idx.length * px);
  idx.forEach((s, k) => {
    images.set(ds.images.subarray(s * px * ds.channels, (s + 1) * px * ds.channels), k * px * ds.channels);
    labels.set(ds.labels.subarray(s * px, (s + 1) * px), k * px);
  });
  return { ...ds, n: idx.length, images, labels, caseIds: idx.map((i) => ds.caseIds[i]) };
}

/**
 * The last round(valFraction * cases) cases (at least one, leaving at least one) become validation.
 * Deterministic: case order is the dataset's order.
 */
export function splitByCase(ds: SliceDataset, valFraction: number): { train: SliceDataset; val: SliceDataset } {
  if (!(valFraction > 0 && valFraction < 1)) throw new RangeError(`valFraction must be in (0, 1), got ${valFraction}`);
  const cases = [...new Set(ds.caseIds)];
  if (cases.length < 2) throw new RangeError(`a train/validation split needs at least 2 cases, the dataset has ${cases.length}`);
  const numVal = Math.max(1, Math.min(cases.length - 1, Math.round(cases.length * valFraction)));
  return {
    train: selectCases(ds, new Set(cases.slice(0, cases.length - numVal))),
    val: selectCases(ds, new Set(cases.slice(cases.length - numVal))),
  };
}
