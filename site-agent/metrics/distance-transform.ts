/**
 * Exact Euclidean distance transform with anisotropic voxel spacing.
 *
 * Felzenszwalb & Huttenlocher, "Distance Transforms of Sampled Functions", Theory of Computing 8 (2012),
 * section 3 (1D lower envelope of parabolas) and section 4 (separability over dimensions). The squared Euclidean
 * distance is separable, so one 1D pass per axis gives the exact result; spacing enters as the physical position
 * of sample p on that axis (p * s), which keeps the parabolas' lower envelope exact for any positive spacing.
 */
import { MetricsError } from './errors.ts';

/**
 * 1D squared distance transform: d[q] = min_p ((q - p) * s)^2 + f[p] over one line (section 3 of F&H).
 * f values of Infinity mark "no feature here". Works in place on `f` through scratch buffers.
 */
function edt1d(
  f: Float64Array,
  n: number,
  s: number,
  d: Float64Array,
  v: Int32Array,
  z: Float64Array,
): void {
  // Find the first finite sample; a line without features stays infinite.
  let first = -1;
  for (let q = 0; q < n; q++) {
    if (f[q] !== Infinity) {
      first = q;
      break;
    }
  }
  if (first < 0) {
    for (let q = 0; q < n; q++) d[q] = Infinity;
    return;
  }
  let k = 0;
  v[0] = first;
  z[0] = -Infinity;
  z[1] = Infinity;
  for (let q = first + 1; q < n; q++) {
    if (f[q] === Infinity) continue;
    const xq = q * s;
    for (;;) {
      const p = v[k];
      const xp = p * s;
      // Intersection of parabolas rooted at xq and xp (F&H eq. for s in section 3, with positions in mm).
      const sx = (f[q] + xq * xq - (f[p] + xp * xp)) / (2 * (xq - xp));
      if (sx <= z[k]) {
        k--;
        if (k < 0) {
          k = 0;
          v[0] = q;
          z[0] = -Infinity;
          z[1] = Infinity;
          break;
        }
      } else {
        k++;
        v[k] = q;
        z[k] = sx;
        z[k + 1] = Infinity;
        break;
      }
    }
  }
  k = 0;
  for (let q = 0; q < n; q++) {
    const xq = q * s;
    while (z[k + 1] < xq) k++;
    const xp = v[k] * s;
    d[q] = (xq - xp) * (xq - xp) + f[v[k]];
  }
}

/**
 * Squared Euclidean distance (in mm^2) from every voxel to the nearest voxel where `feature` is non-zero.
 * `dims` is row-major (last axis fastest), `spacing` in mm per axis. Without any feature voxel every
 * distance is Infinity.
 */
export function squaredDistanceTransform(
  feature: Uint8Array,
  dims: readonly number[],
  spacing: readonly number[],
): Float64Array {
  if (dims.length !== spacing.length) {
    throw new MetricsError('BAD_SPACING', `spacing has ${spacing.length} entries for ${dims.length} dims`);
  }
  let total = 1;
  for (const dim of dims) total *= dim;
  if (feature.length !== total) {
    throw new MetricsError('SIZE_MISMATCH', `mask has ${feature.length} voxels, dims imply ${total}`);
  }
  const out = new Float64Array(total);
  for (let i = 0; i < total; i++) out[i] = feature[i] ? 0 : Infinity;
  const maxLen = Math.max(...dims);
  const line = new Float64Array(maxLen);
  const res = new Float64Array(maxLen);
  const v = new Int32Array(maxLen);
  const z = new Float64Array(maxLen + 1);
  // stride of each axis in the row-major layout
  const strides = dims.map((_, a) => dims.slice(a + 1).reduce((p, c) => p * c, 1));
  for (let axis = 0; axis < dims.length; axis++) {
    const n = dims[axis];
    const stride = strides[axis];
    const lines = total / n;
    for (let l = 0; l < lines; l++) {
      // Decompose the line index into (outer, inner) around this axis.
      const inner = l % stride;
      const outer = Math.floor(l / stride);
      const base = outer * stride * n + inner;
      for (let q = 0; q < n; q++) line[q] = out[base + q * stride];
      edt1d(line, n, spacing[axis], res, v, z);
      for (let q = 0; q < n; q++) out[base + q * stride] = res[q];
    }
  }
  return out;
}
