/** Converting a read volume into a label map, refusing non-integer, negative, too large or unexpected values. */
import { NiftiError } from './nifti-error.ts';

/**
 * Uint8 labels from float voxel values. `allowed` (optional) lists the legal label values; anything else is
 * reported with its count so a mislabelled file is caught before training.
 */
export function toLabelMap(file: string, data: Float32Array, allowed?: readonly number[]): Uint8Array {
  const out = new Uint8Array(data.length);
  const badCounts = new Map<number, number>();
  const ok = allowed ? new Set(allowed) : undefined;
  for (let i = 0; i < data.length; i++) {
    const v = data[i];
    if (!Number.isInteger(v) || v < 0 || v > 255 || (ok !== undefined && !ok.has(v))) {
      badCounts.set(v, (badCounts.get(v) ?? 0) + 1);
      continue;
    }
    out[i] = v;
  }
  if (badCounts.size > 0) {
    const shown = [...badCounts.entries()].slice(0, 8).map(([v, n]) => `${v} (x${n})`).join(', ');
    const expect = allowed ? `expected one of ${allowed.join(', ')}` : 'expected integers 0..255';
    throw new NiftiError('BAD_LABEL_VALUES', file, `unexpected label values ${shown}${badCounts.size > 8 ? ', ...' : ''}; ${expect}`);
  }
  return out;
}

/** Sorted distinct values of a label map. */
export function labelValues(labels: ArrayLike<number>): number[] {
  const seen = new Set<number>();
  for (let i = 0; i < labels.length; i++) seen.add(labels[i]);
  return [...seen].sort((a, b) => a - b);
}
