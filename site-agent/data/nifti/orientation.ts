/**
 * Reorientation to fedsfda's canonical voxel order, RAS+: the first voxel axis increases towards the
 * patient's Right, the second towards Anterior, the third towards Superior (nibabel's `as_closest_canonical`).
 * Every volume is held in this order after reading, so an image and its label map line up even when their
 * files store the voxels differently; the writer undoes the permutation/flips to restore the source layout.
 * Oblique volumes are reoriented to the closest canonical axes (no resampling); the affine stays exact.
 */
import { mul44, type Mat44 } from './affine.ts';

export type Dims3 = [number, number, number];

/** How source voxel axes map onto canonical axes. */
export interface Reorientation {
  /** perm[i] = canonical axis that source axis i becomes. */
  readonly perm: readonly [number, number, number];
  /** flip[i] = source axis i runs against the canonical (+RAS) direction. */
  readonly flip: readonly [boolean, boolean, boolean];
  /** Source (on-disk) dims. */
  readonly sourceDims: Dims3;
}

export const IDENTITY_REORIENTATION = (dims: Dims3): Reorientation => ({ perm: [0, 1, 2], flip: [false, false, false], sourceDims: [...dims] as Dims3 });

/** Closest-axis assignment (greedy on the largest direction cosines) from a voxel-to-RAS affine. */
export function computeReorientation(affine: Mat44, dims: Dims3): Reorientation {
  const cos: number[][] = [[], [], []];
  for (let i = 0; i < 3; i++) {
    const n = Math.hypot(affine[0][i], affine[1][i], affine[2][i]) || 1;
    for (let w = 0; w < 3; w++) cos[i][w] = affine[w][i] / n;
  }
  const perm: [number, number, number] = [-1, -1, -1];
  const flip: [boolean, boolean, boolean] = [false, false, false];
  const usedW = [false, false, false];
  for (let step = 0; step < 3; step++) {
    let best = -1;
    let bi = -1;
    let bw = -1;
    for (let i = 0; i < 3; i++) {
      if (perm[i] >= 0) continue;
      for (let w = 0; w < 3; w++) {
        if (usedW[w]) continue;
        if (Math.abs(cos[i][w]) > best) {
          best = Math.abs(cos[i][w]);
          bi = i;
          bw = w;
        }
      }
    }
    perm[bi] = bw;
    flip[bi] = cos[bi][bw] < 0;
    usedW[bw] = true;
  }
  return { perm, flip, sourceDims: [...dims] as Dims3 };
}

/** Axis codes of the source voxel axes, e.g. `LPS` (DICOM-like) or `RAS`. */
export function orientationCode(r: Reorientation): string {
  let s = '';
  for (let i = 0; i < 3; i++) s += (r.flip[i] ? 'LPI' : 'RAS')[r.perm[i]];
  return s;
}

export function canonicalDims(r: Reorientation): Dims3 {
  const d: Dims3 = [0, 0, 0];
  for (let i = 0; i < 3; i++) d[r.perm[i]] = r.sourceDims[i];
  return d;
}

/** Permutes a per-source-axis triple (e.g. spacing) into canonical order. */
export function toCanonicalTriple(r: Reorientation, v: readonly number[]): Dims3 {
  const d: Dims3 = [0, 0, 0];
  for (let i = 0; i < 3; i++) d[r.perm[i]] = v[i];
  return d;
}

/** Canonical-voxel -> world affine: the source affine composed with the canonical->source index map. */
export function canonicalAffine(r: Reorientation, source: Mat44): Mat44 {
  const t: Mat44 = [
    [0, 0, 0, 0],
    [0, 0, 0, 0],
    [0, 0, 0, 0],
    [0, 0, 0, 1],
  ];
  for (let i = 0; i < 3; i++) {
    t[i][r.perm[i]] = r.flip[i] ? -1 : 1;
    t[i][3] = r.flip[i] ? r.sourceDims[i] - 1 : 0;
  }
  return mul44(source, t);
}

/**
 * Walks canonical voxels in canonical (x-fastest) order and calls visit(canonicalIndex, sourceIndex).
 * Used in both directions (gather to canonical, scatter back to the source layout).
 */
function walk(r: Reorientation, visit: (c: number, s: number) => void): void {
  const sd = r.sourceDims;
  const strides = [1, sd[0], sd[0] * sd[1]];
  const cd = canonicalDims(r);
  const step: number[] = [0, 0, 0];
  let start = 0;
  for (let i = 0; i < 3; i++) {
    const j = r.perm[i];
    step[j] = r.flip[i] ? -strides[i] : strides[i];
    if (r.flip[i]) start += (sd[i] - 1) * strides[i];
  }
  let c = 0;
  for (let z = 0; z < cd[2]; z++) {
    const sz = start + z * step[2];
    for (let y = 0; y < cd[1]; y++) {
      let s = sz + y * step[1];
      for (let x = 0; x < cd[0]; x++) {
        visit(c++, s);
        s += step[0];
      }
    }
  }
}

/** Source-order voxels -> canonical order. */
export function reorientToCanonical<T extends { length: number; [i: number]: number }>(src: ArrayLike<number>, r: Reorientation, out: T): T {
  walk(r, (c, s) => {
    out[c] = src[s];
  });
  return out;
}

/** Canonical-order voxels -> source order (the inverse of reorientToCanonical). */
export function reorientFromCanonical<T extends { length: number; [i: number]: number }>(src: ArrayLike<number>, r: Reorientation, out: T): T {
  walk(r, (c, s) => {
    out[s] = src[c];
  });
  return out;
}
