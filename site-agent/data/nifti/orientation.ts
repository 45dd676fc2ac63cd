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

/** 3x3 inverse (the caller guarantees a non-singular matrix). */
function inv33(m: number[][]): number[][] {
  const [a, b, c] = m[0];
  const [d, e, f] = m[1];
  const [g, h, i] = m[2];
  const A = e * i - f * h;
  const B = -(d * i - f * g);
  const C = d * h - e * g;
  const det = a * A + b * B + c * C;
  return [
    [A / det, -(b * i - c * h) / det, (b * f - c * e) / det],
    [B / det, (a * i - c * g) / det, -(a * f - c * d) / det],
    [C / det, -(a * h - b * g) / det, (a * e - b * d) / det],
  ];
}

/**
 * The orthogonal polar factor of a non-singular 3x3 matrix (the closest rotation/reflection, shear removed):
 * Newton's iteration R <- (R + R^-T) / 2 (Higham, "Computing the polar decomposition", SIAM J. Sci. Stat.
 * Comput. 7(4), 1986, eq. 3.1), which converges quadratically to U V^T of the SVD U S V^T that nibabel computes.
 */
export function polarOrthogonal(m: readonly (readonly number[])[]): number[][] {
  let r = m.map((row) => row.slice());
  for (let it = 0; it < 100; it++) {
    const inv = inv33(r);
    let change = 0;
    const next = r.map((row, i) => row.map((v, j) => {
      const n = 0.5 * (v + inv[j][i]);
      change = Math.max(change, Math.abs(n - v));
      return n;
    }));
    r = next;
    if (change < 1e-15) break;
  }
  return r;
}

/**
 * Closest-axis assignment exactly as nibabel's `io_orientation` (nibabel/orientations.py, 5.0): columns
 * normalised by their zooms, shear removed by the polar decomposition, then input axis by input axis (0, 1, 2)
 * the world axis with the largest |cosine| (first on ties), that world axis then removed from consideration.
 * Going axis by axis (not the largest cosine overall) is what makes a strongly oblique volume land on the same
 * voxels as nibabel's `as_closest_canonical`.
 */
export function computeReorientation(affine: Mat44, dims: Dims3): Reorientation {
  const rs: number[][] = [[], [], []];
  for (let i = 0; i < 3; i++) {
    const n = Math.hypot(affine[0][i], affine[1][i], affine[2][i]) || 1;
    for (let w = 0; w < 3; w++) rs[w][i] = affine[w][i] / n;
  }
  const r = polarOrthogonal(rs);
  const perm: [number, number, number] = [-1, -1, -1];
  const flip: [boolean, boolean, boolean] = [false, false, false];
  for (let i = 0; i < 3; i++) {
    let bw = 0;
    for (let w = 1; w < 3; w++) if (Math.abs(r[w][i]) > Math.abs(r[bw][i])) bw = w;
    if (r[bw][i] === 0) throw new RangeError(`voxel axis ${i} has no direction after removing shear (degenerate affine)`);
    perm[i] = bw;
    flip[i] = r[bw][i] < 0;
    for (let j = 0; j < 3; j++) r[bw][j] = 0;
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
