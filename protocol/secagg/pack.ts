/**
 * One masked vector for everything a round aggregates: weights x example count, the example count itself,
 * BN statistics, per-class latent sufficient statistics (count, sum, sum of outer products), class histograms.
 * Packing them into one Float32Array means one quantize/mask/unmask pass and one set of shares per round.
 *
 * The layout is deterministic (entries sorted by name) so every site packs the same names in the same order
 * and the coordinator can unpack the unmasked sum without any per-site information.
 */
import { SecAggError } from './errors.ts';

export interface PackEntry {
  readonly name: string;
  readonly offset: number;
  readonly length: number;
}

export interface PackLayout {
  readonly entries: readonly PackEntry[];
  readonly totalLength: number;
}

/** The layout `packVectors` would produce for these names and lengths. */
export function packLayout(lengths: Record<string, number>): PackLayout {
  const names = Object.keys(lengths).sort();
  const entries: PackEntry[] = [];
  let offset = 0;
  for (const name of names) {
    const length = lengths[name];
    if (!Number.isInteger(length) || length < 0) {
      throw new SecAggError('bad-input', `packed vector "${name}" has invalid length ${length}`);
    }
    entries.push({ name, offset, length });
    offset += length;
  }
  return { entries, totalLength: offset };
}

/** Concatenates named vectors (sorted by name) into one Float32Array. */
export function packVectors(named: Record<string, Float32Array>): { vector: Float32Array; layout: PackLayout } {
  const lengths: Record<string, number> = {};
  for (const [name, v] of Object.entries(named)) {
    if (!(v instanceof Float32Array)) throw new SecAggError('bad-input', `packed vector "${name}" is not a Float32Array`);
    lengths[name] = v.length;
  }
  const layout = packLayout(lengths);
  const vector = new Float32Array(layout.totalLength);
  for (const e of layout.entries) vector.set(named[e.name], e.offset);
  return { vector, layout };
}

/** Splits a packed (e.g. aggregated) vector back into named copies. */
export function unpackVectors(vector: Float32Array, layout: PackLayout): Record<string, Float32Array> {
  if (vector.length !== layout.totalLength) {
    throw new SecAggError('bad-input', `packed vector has ${vector.length} entries, layout expects ${layout.totalLength}`);
  }
  const out: Record<string, Float32Array> = {};
  for (const e of layout.entries) out[e.name] = vector.slice(e.offset, e.offset + e.length);
  return out;
}

/** True when two layouts describe the same names, order and lengths (all sites of a round must agree). */
export function sameLayout(a: PackLayout, b: PackLayout): boolean {
  if (a.totalLength !== b.totalLength || a.entries.length !== b.entries.length) return false;
  return a.entries.every((e, i) => e.name === b.entries[i].name && e.length === b.entries[i].length);
}
