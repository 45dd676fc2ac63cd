/**
 * L2 clipping: the one step that bounds what any single contribution (a site's update, an example's gradient, an
 * example's feature vector) can move a sum, i.e. the sensitivity every noise calibration relies on
 * (Abadi et al., CCS 2016, Alg. 1; McMahan et al., ICLR 2018, Alg. 1 "ClipFn").
 */

export type Vector = Float32Array | Float64Array;

/** sqrt(sum of squares) over several vectors taken together (one flat vector), accumulated in float64. */
export function l2Norm(parts: readonly Vector[]): number {
  let s = 0;
  for (const p of parts) for (let i = 0; i < p.length; i++) s += p[i] * p[i];
  return Math.sqrt(s);
}

export interface ClipResult {
  /** The norm before clipping. */
  readonly norm: number;
  /** The factor applied: min(1, bound / norm). */
  readonly factor: number;
  /** True when the contribution was within the bound (the bit adaptive clipping counts). */
  readonly unclipped: boolean;
}

/**
 * Scales the vectors (jointly, in place) so that their overall L2 norm is at most `bound`.
 * A float32 vector is scaled with a factor shrunk by 1e-6 relative so that rounding cannot push the stored
 * norm above the bound.
 */
export function clipL2InPlace(parts: readonly Vector[], bound: number): ClipResult {
  if (!(bound > 0) || !Number.isFinite(bound)) throw new RangeError(`clipping bound must be a finite number > 0, got ${bound}`);
  const norm = l2Norm(parts);
  if (!Number.isFinite(norm)) throw new RangeError('cannot clip a vector with a non-finite entry');
  if (norm <= bound) return { norm, factor: 1, unclipped: true };
  const hasF32 = parts.some((p) => p instanceof Float32Array);
  const factor = (bound / norm) * (hasF32 ? 1 - 1e-6 : 1);
  for (const p of parts) for (let i = 0; i < p.length; i++) p[i] *= factor;
  return { norm, factor, unclipped: false };
}
