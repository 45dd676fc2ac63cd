/**
 * Label volumes -> class maps. A model predicts contiguous class indices 0..K-1 (uint8); a label file may store
 * sparse codes (atlases: AAL codes up to 9170, FreeSurfer's up to 14175). When the legal codes are listed
 * (dataset.json `labels`), class k is the k-th smallest listed code, and `codesToClassMap` / `classMapToCodes`
 * translate both ways, so predictions are written back with the file's own codes.
 */
import type { NiftiDatatypeName } from './datatypes.ts';
import { NiftiError } from './nifti-error.ts';

/** Largest number of classes a model and a uint8 class map hold. */
export const MAX_CLASSES = 255;

function listCodes(codes: readonly number[]): string {
  const shown = codes.slice(0, 12).join(', ');
  return codes.length > 12 ? `${shown}, ... ${codes[codes.length - 1]}` : shown;
}

/** Sorted distinct codes; throws RangeError for codes that are not non-negative integers or too many classes. */
export function classCodes(codes: Iterable<number>): number[] {
  const sorted = [...new Set(codes)].sort((a, b) => a - b);
  for (const c of sorted) if (!Number.isSafeInteger(c) || c < 0) throw new RangeError(`label code ${c} is not a non-negative integer`);
  if (sorted.length > MAX_CLASSES) throw new RangeError(`${sorted.length} label codes, more than the ${MAX_CLASSES} classes a model holds`);
  return sorted;
}

/** True when class index k is code k for every k (no translation needed). */
export function isIdentityCodes(codes: readonly number[]): boolean {
  return codes.every((c, i) => c === i);
}

/**
 * Uint8 class map from float voxel values. Without `codes`, values must be integers 0..255 and are used as class
 * indices. With `codes` (sorted, as from classCodes), each value must be one of them and becomes its index.
 * Anything else is reported with its count, so a mislabelled file is caught before training.
 */
export function toLabelMap(file: string, data: Float32Array, codes?: readonly number[]): Uint8Array {
  const out = new Uint8Array(data.length);
  const badCounts = new Map<number, number>();
  const index = codes && !isIdentityCodes(codes) ? new Map(codes.map((c, i) => [c, i])) : undefined;
  const limit = codes ? codes.length - 1 : 255;
  for (let i = 0; i < data.length; i++) {
    const v = data[i];
    const k = index ? index.get(v) : Number.isInteger(v) && v >= 0 && v <= limit ? v : undefined;
    if (k === undefined) {
      badCounts.set(v, (badCounts.get(v) ?? 0) + 1);
      continue;
    }
    out[i] = k;
  }
  if (badCounts.size > 0) {
    const shown = [...badCounts.entries()].slice(0, 8).map(([v, n]) => `${v} (x${n})`).join(', ');
    const more = badCounts.size > 8 ? `, ... (${badCounts.size} distinct)` : '';
    const expect = codes
      ? `not among the ${codes.length} label codes listed in the dataset's labels (${listCodes(codes)})`
      : 'not class indices 0..255 (list sparse codes in dataset.json "labels" to have them mapped to classes)';
    throw new NiftiError('BAD_LABEL_VALUES', file, `label values ${shown}${more} are ${expect}`);
  }
  return out;
}

/** Class indices back to the dataset's codes, in the smallest datatype that holds them (for writing predictions). */
export function classMapToCodes(classes: Uint8Array, codes: readonly number[] | undefined): { data: ArrayLike<number>; datatype: NiftiDatatypeName } {
  if (codes === undefined || isIdentityCodes(codes)) return { data: classes, datatype: 'uint8' };
  const max = codes[codes.length - 1];
  const out = max <= 255 ? new Uint8Array(classes.length) : max <= 65535 ? new Uint16Array(classes.length) : new Int32Array(classes.length);
  for (let i = 0; i < classes.length; i++) {
    const c = codes[classes[i]];
    if (c === undefined) throw new RangeError(`class ${classes[i]} has no code (the table has ${codes.length})`);
    out[i] = c;
  }
  return { data: out, datatype: max <= 255 ? 'uint8' : max <= 65535 ? 'uint16' : 'int32' };
}

/** Sorted distinct values of a label map. */
export function labelValues(labels: ArrayLike<number>): number[] {
  const seen = new Set<number>();
  for (let i = 0; i < labels.length; i++) seen.add(labels[i]);
  return [...seen].sort((a, b) => a - b);
}
