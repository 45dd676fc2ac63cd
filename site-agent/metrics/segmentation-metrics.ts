/**
 * Dice, IoU, HD95 and ASSD per foreground class of one volume (2D or 3D), distances in mm.
 *
 * Semantics follow MONAI (monai/metrics/meandice.py, meaniou.py, hausdorff_distance.py, surface_distance.py):
 * - Dice = 2|P∩Y| / (|P| + |Y|); IoU = |P∩Y| / |P∪Y|.
 * - Empty ground truth for a class -> NaN for every metric of that class (MONAI `ignore_empty=True`, the default),
 *   so it drops out of NaN-aware means. With `includeEmpty: true` (MONAI `ignore_empty=False`): both empty ->
 *   Dice = IoU = 1 and distances 0; empty truth with a non-empty prediction -> Dice = IoU = 0, distances Infinity.
 * - Empty prediction with non-empty truth -> Dice = IoU = 0 and HD95 = ASSD = Infinity. Infinities are kept as
 *   such and counted in `infiniteCount`; means in `mean` are over finite values only, so always read them together
 *   with `infiniteCount`.
 * - Surfaces: mask XOR erosion, face connectivity, image border counts as background (see surface.ts).
 * - Distances: exact Euclidean distance transform with the voxel spacing (distance-transform.ts).
 * - HD95: MONAI's definition, NOT medpy's: the 95th percentile (numpy linear interpolation) of the directed
 *   distances pred->truth and of truth->pred separately, then the maximum of the two. (medpy pools both
 *   directions before taking the percentile.)
 * - ASSD: MONAI >= 1.3 `symmetric=True`: the mean of the concatenation of both directed distance sets.
 */
import { squaredDistanceTransform } from './distance-transform.ts';
import { MetricsError } from './errors.ts';
import { maskSurface } from './surface.ts';

export interface ClassMetrics {
  readonly dice: number;
  readonly iou: number;
  readonly hd95: number;
  readonly assd: number;
}

export interface CaseMetrics {
  /** Index i is class i + 1 (background 0 is not scored). */
  readonly perClass: ClassMetrics[];
  /** Mean over classes of the finite values (NaN and Infinity excluded); NaN when none is finite. */
  readonly mean: ClassMetrics;
  /** How many (class, metric) entries are infinite (empty prediction or empty truth under includeEmpty). */
  readonly infiniteCount: number;
}

export interface MetricsOptions {
  /** Score classes whose ground truth is empty instead of returning NaN (MONAI ignore_empty=false). */
  readonly includeEmpty?: boolean;
  /** Percentile for the robust Hausdorff distance; 95 by default. */
  readonly percentile?: number;
}

/** numpy.percentile with the default 'linear' interpolation, on an already sorted array. */
export function percentileSorted(sorted: Float64Array, q: number): number {
  if (sorted.length === 0) return NaN;
  const pos = (q / 100) * (sorted.length - 1);
  const lo = Math.floor(pos);
  const hi = Math.min(lo + 1, sorted.length - 1);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
}

/** Distances (mm) from each surface voxel of `from` to the nearest surface voxel of `to`. */
function directedSurfaceDistances(
  fromSurface: Uint8Array,
  toSurface: Uint8Array,
  dims: readonly number[],
  spacing: readonly number[],
): Float64Array {
  const dt = squaredDistanceTransform(toSurface, dims, spacing);
  let n = 0;
  for (let i = 0; i < fromSurface.length; i++) if (fromSurface[i]) n++;
  const out = new Float64Array(n);
  let k = 0;
  for (let i = 0; i < fromSurface.length; i++) if (fromSurface[i]) out[k++] = Math.sqrt(dt[i]);
  return out;
}

function validate(pred: Uint8Array, truth: Uint8Array, dims: readonly number[], spacing: readonly number[], numClasses: number): void {
  if (dims.length < 1 || dims.length > 3 || dims.some((d) => !Number.isInteger(d) || d < 1)) {
    throw new MetricsError('BAD_DIMS', `dims must be 1 to 3 positive integers, got [${dims.join(', ')}]`);
  }
  if (spacing.length !== dims.length || spacing.some((s) => !(s > 0) || !Number.isFinite(s))) {
    throw new MetricsError('BAD_SPACING', `spacing must be ${dims.length} positive finite mm values, got [${spacing.join(', ')}]`);
  }
  const total = dims.reduce((p, c) => p * c, 1);
  if (pred.length !== total || truth.length !== total) {
    throw new MetricsError('SIZE_MISMATCH', `pred has ${pred.length} and truth ${truth.length} voxels; dims imply ${total}`);
  }
  if (!Number.isInteger(numClasses) || numClasses < 2 || numClasses > 256) {
    throw new MetricsError('BAD_NUM_CLASSES', `numClasses must be an integer in [2, 256], got ${numClasses}`);
  }
  for (let i = 0; i < total; i++) {
    if (pred[i] >= numClasses || truth[i] >= numClasses) {
      throw new MetricsError('BAD_LABEL', `label ${Math.max(pred[i], truth[i])} at voxel ${i} is not < numClasses=${numClasses}`);
    }
  }
}

function meanFinite(values: number[]): number {
  let s = 0;
  let n = 0;
  for (const v of values) {
    if (Number.isFinite(v)) {
      s += v;
      n++;
    }
  }
  return n === 0 ? NaN : s / n;
}

/** Metrics for one binary mask pair. */
export function binaryMetrics(
  pred: Uint8Array,
  truth: Uint8Array,
  dims: readonly number[],
  spacing: readonly number[],
  opts: MetricsOptions = {},
): ClassMetrics {
  let inter = 0;
  let np = 0;
  let nt = 0;
  for (let i = 0; i < pred.length; i++) {
    const p = pred[i] ? 1 : 0;
    const t = truth[i] ? 1 : 0;
    np += p;
    nt += t;
    inter += p & t;
  }
  if (nt === 0) {
    if (!opts.includeEmpty) return { dice: NaN, iou: NaN, hd95: NaN, assd: NaN };
    if (np === 0) return { dice: 1, iou: 1, hd95: 0, assd: 0 };
    return { dice: 0, iou: 0, hd95: Infinity, assd: Infinity };
  }
  const dice = (2 * inter) / (np + nt);
  const iou = inter / (np + nt - inter);
  if (np === 0) return { dice, iou, hd95: Infinity, assd: Infinity };
  const ps = maskSurface(pred, dims);
  const ts = maskSurface(truth, dims);
  const dPT = directedSurfaceDistances(ps, ts, dims, spacing).sort();
  const dTP = directedSurfaceDistances(ts, ps, dims, spacing).sort();
  const q = opts.percentile ?? 95;
  const hd95 = Math.max(percentileSorted(dPT, q), percentileSorted(dTP, q));
  let sum = 0;
  for (const d of dPT) sum += d;
  for (const d of dTP) sum += d;
  const assd = sum / (dPT.length + dTP.length);
  return { dice, iou, hd95, assd };
}

/**
 * Per-class metrics of a label volume against its ground truth.
 * @example
 * const r = computeMetrics(pred, truth, [64, 64], [1, 1], 4);
 * r.perClass[0].dice; // class 1
 */
export function computeMetrics(
  pred: Uint8Array,
  truth: Uint8Array,
  dims: readonly number[],
  spacing: readonly number[],
  numClasses: number,
  opts: MetricsOptions = {},
): CaseMetrics {
  validate(pred, truth, dims, spacing, numClasses);
  const perClass: ClassMetrics[] = [];
  const pm = new Uint8Array(pred.length);
  const tm = new Uint8Array(pred.length);
  let infiniteCount = 0;
  for (let c = 1; c < numClasses; c++) {
    for (let i = 0; i < pred.length; i++) {
      pm[i] = pred[i] === c ? 1 : 0;
      tm[i] = truth[i] === c ? 1 : 0;
    }
    const m = binaryMetrics(pm, tm, dims, spacing, opts);
    for (const v of [m.dice, m.iou, m.hd95, m.assd]) if (v === Infinity) infiniteCount++;
    perClass.push(m);
  }
  const mean: ClassMetrics = {
    dice: meanFinite(perClass.map((m) => m.dice)),
    iou: meanFinite(perClass.map((m) => m.iou)),
    hd95: meanFinite(perClass.map((m) => m.hd95)),
    assd: meanFinite(perClass.map((m) => m.assd)),
  };
  return { perClass, mean, infiniteCount };
}
