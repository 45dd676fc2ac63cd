/**
 * A free piecewise-linear intensity transfer y = g(x) with K knots, applied pixel-wise to the (z-scored) input image in
 * front of a frozen network: the parameterisation of the input adapter (input-adapter.ts). Knots x_1 < ... < x_K are
 * fixed (target intensity quantiles); the values y_k are free, so g may be non-monotone (a contrast reordering between
 * MR sequences is one). Between knots g interpolates linearly; beyond the end knots it extends the end segments
 * linearly, so that with K = 2 the curve is exactly an affine map (y = -x is the input polarity flip).
 * Saved next to an adapted model as JSON (`kind: fedsfda-intensity-curve`); validated with zod on load.
 *
 * Version 2 adds an optional spatial pre-filter (spatial-prefilter.ts) applied to the image BEFORE g: the adapted model
 * then sees g(G_σ * x). A version-1 file (no filter) loads as before; a file with a filter says version 2, so a reader
 * that does not know the filter refuses it instead of silently predicting on unfiltered images.
 *
 * Version 3 adds a bias-field correction (bias-correction.ts) applied BEFORE the pre-filter (if any) and g: the model
 * sees g(G_σ * C(x)), C refitted on each image it is applied to, so the file records C's settings. Versions 1 and 2
 * load as before; a reader that knows only them refuses a version-3 file.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { z } from 'zod';
import { describeFirstIssue } from '../../protocol/common/index.ts';
import { AdaptError } from './adapt-error.ts';
import { applyBiasCorrection, BiasCorrectionSchema, type BiasCorrection } from './bias-correction.ts';
import { applyPrefilter, SpatialPrefilterSchema, type SpatialPrefilter } from './spatial-prefilter.ts';
import type { UnlabeledSlices } from './unlabeled-slices.ts';

export const IntensityCurveSchema = z
  .object({
    kind: z.literal('fedsfda-intensity-curve'),
    /** 1: the curve alone; 2: a spatial pre-filter in front of it (`prefilter` required); 3: a bias-field correction first (`biasCorrection` required, `prefilter` optional). */
    version: z.union([z.literal(1), z.literal(2), z.literal(3)]),
    knots: z.array(z.number().finite()).min(2).max(256),
    values: z.array(z.number().finite()).min(2).max(256),
    prefilter: SpatialPrefilterSchema.optional(),
    biasCorrection: BiasCorrectionSchema.optional(),
  })
  .strict()
  .superRefine((c, ctx) => {
    if (c.version === 1 && c.prefilter !== undefined) ctx.addIssue({ code: 'custom', path: ['prefilter'], message: 'a version-1 curve has no pre-filter (version 2 has)' });
    if (c.version === 2 && c.prefilter === undefined) ctx.addIssue({ code: 'custom', path: ['prefilter'], message: 'a version-2 curve needs its pre-filter' });
    if (c.version !== 3 && c.biasCorrection !== undefined) ctx.addIssue({ code: 'custom', path: ['biasCorrection'], message: 'only a version-3 curve has a bias-field correction' });
    if (c.version === 3 && c.biasCorrection === undefined) ctx.addIssue({ code: 'custom', path: ['biasCorrection'], message: 'a version-3 curve needs its bias-field correction' });
    if (c.values.length !== c.knots.length) ctx.addIssue({ code: 'custom', path: ['values'], message: `expected ${c.knots.length} values, one per knot` });
    for (let i = 1; i < c.knots.length; i++) {
      if (!(c.knots[i] > c.knots[i - 1])) ctx.addIssue({ code: 'custom', path: ['knots', i], message: 'knots must be strictly increasing' });
    }
  });

export type IntensityCurve = z.infer<typeof IntensityCurveSchema>;

/**
 * Builds and validates a curve (with the pre-filter and the bias-field correction in front of it, if any); bad fields
 * are a typed error naming the field.
 */
export function makeCurve(knots: readonly number[], values: readonly number[], prefilter?: SpatialPrefilter, biasCorrection?: BiasCorrection): IntensityCurve {
  if (biasCorrection !== undefined) {
    return parseCurve({ kind: 'fedsfda-intensity-curve', version: 3, knots: [...knots], values: [...values], ...(prefilter ? { prefilter: { ...prefilter } } : {}), biasCorrection: { ...biasCorrection } });
  }
  if (prefilter === undefined) return parseCurve({ kind: 'fedsfda-intensity-curve', version: 1, knots: [...knots], values: [...values] });
  return parseCurve({ kind: 'fedsfda-intensity-curve', version: 2, knots: [...knots], values: [...values], prefilter: { ...prefilter } });
}

export function parseCurve(raw: unknown, where = 'intensity curve'): IntensityCurve {
  const r = IntensityCurveSchema.safeParse(raw);
  if (!r.success) throw new AdaptError('BAD_OPTION', `${where}: ${describeFirstIssue(r.error)}`);
  return r.data;
}

/** The identity curve through the given knots. */
export function identityCurve(knots: readonly number[]): IntensityCurve {
  return makeCurve(knots, knots);
}

/** Segment index s (0..K-2) and position t of x on it (t < 0 or > 1 beyond the end knots: linear extension). */
function locate(knots: readonly number[], x: number): { s: number; t: number } {
  const k = knots.length;
  let lo = 0;
  let hi = k - 2;
  // Binary search for the last segment whose left knot is <= x (clamped to the end segments).
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (knots[mid] <= x) lo = mid;
    else hi = mid - 1;
  }
  return { s: lo, t: (x - knots[lo]) / (knots[lo + 1] - knots[lo]) };
}

/** g(x) for one value. */
export function evalCurve(c: IntensityCurve, x: number): number {
  const { s, t } = locate(c.knots, x);
  return (1 - t) * c.values[s] + t * c.values[s + 1];
}

/**
 * +1 / -1 when the curve is exactly y = x / y = -x through two knots (the polarity check's outcomes), else null.
 */
export function curvePolarity(c: IntensityCurve): 1 | -1 | null {
  if (c.knots.length !== 2 || c.prefilter !== undefined || c.biasCorrection !== undefined) return null;
  if (c.values.every((v, i) => v === c.knots[i])) return 1;
  if (c.values.every((v, i) => v === -c.knots[i])) return -1;
  return null;
}

/**
 * g applied to every value of `images` (a new array; a polarity curve is applied exactly, without interpolation).
 * Pixel-wise only: a curve with a spatial pre-filter needs the image shape, so `applyCurve` it.
 */
export function applyCurveToArray(c: IntensityCurve, images: Float32Array): Float32Array {
  if (c.prefilter !== undefined || c.biasCorrection !== undefined) throw new AdaptError('BAD_OPTION', 'this intensity curve has a spatial pre-filter or a bias-field correction: apply it to images with their shape and cases (applyCurve)');
  return applyValues(c, images);
}

function applyValues(c: IntensityCurve, images: Float32Array): Float32Array {
  const polarity = curvePolarity(c);
  if (polarity === 1) return new Float32Array(images);
  if (polarity === -1) return images.map((v) => -v);
  const out = new Float32Array(images.length);
  for (let i = 0; i < images.length; i++) out[i] = evalCurve(c, images[i]);
  return out;
}

/** The target seen through the curve, after its bias-field correction and pre-filter if it has them (same slices, case ids and spacing). */
export function applyCurve(c: IntensityCurve, target: UnlabeledSlices): UnlabeledSlices {
  if (target.channels !== 1) throw new AdaptError('BAD_SHAPE', `an intensity curve applies to 1-channel images, got ${target.channels} channels`);
  const corrected = c.biasCorrection === undefined ? target : applyBiasCorrection(c.biasCorrection, target).target;
  const filtered = c.prefilter === undefined ? corrected.images : applyPrefilter(c.prefilter, corrected).images;
  return { ...target, images: applyValues(c, filtered) };
}

/**
 * The curve as a linear map of its values: row i of the [n, K] matrix holds the interpolation weights of x_i, so
 * g(x) = B v. Used to fit the values by gradient descent (a dense matMul, cheap for K <= 32).
 */
export function basisMatrix(knots: readonly number[], x: Float32Array): Float32Array {
  const k = knots.length;
  const b = new Float32Array(x.length * k);
  for (let i = 0; i < x.length; i++) {
    const { s, t } = locate(knots, x[i]);
    b[i * k + s] = 1 - t;
    b[i * k + s + 1] = t;
  }
  return b;
}

/**
 * K knots at evenly spaced quantiles of the values (from `lo` to `hi`), at least `minGap` of the value range apart
 * (quantiles of a large constant region, e.g. background, would otherwise coincide).
 */
export function quantileKnots(values: Float32Array, k: number, lo = 0.005, hi = 0.995): number[] {
  if (!Number.isInteger(k) || k < 2) throw new AdaptError('BAD_OPTION', `an intensity curve needs at least 2 knots, got ${k}`);
  if (values.length === 0) throw new AdaptError('EMPTY_TARGET', 'no intensities to place knots on');
  // A strided sample is plenty for quantiles and keeps this cheap on large targets.
  const stride = Math.max(1, Math.floor(values.length / 200_000));
  const sample: number[] = [];
  for (let i = 0; i < values.length; i += stride) if (Number.isFinite(values[i])) sample.push(values[i]);
  sample.sort((a, b) => a - b);
  const q = (p: number): number => sample[Math.min(sample.length - 1, Math.max(0, Math.round(p * (sample.length - 1))))];
  const a = q(lo);
  const b = q(hi);
  if (!(b > a)) throw new AdaptError('BAD_SHAPE', `the target intensities are constant (${a}); an intensity curve cannot be fitted`);
  const minGap = (b - a) / (4 * k);
  const knots = [a];
  for (let i = 1; i < k - 1; i++) {
    const v = q(lo + ((hi - lo) * i) / (k - 1));
    if (v - knots[knots.length - 1] >= minGap && b - v >= minGap) knots.push(v);
  }
  knots.push(b);
  // Merged knots: fill the largest gaps so that K knots remain.
  while (knots.length < k) {
    let at = 0;
    for (let i = 1; i < knots.length - 1; i++) if (knots[i + 1] - knots[i] > knots[at + 1] - knots[at]) at = i;
    knots.splice(at + 1, 0, (knots[at] + knots[at + 1]) / 2);
  }
  return knots;
}

export async function saveCurve(c: IntensityCurve, file: string): Promise<void> {
  await writeFile(file, JSON.stringify(c, null, 2));
}

export async function loadCurve(file: string): Promise<IntensityCurve> {
  let raw: unknown;
  try {
    raw = JSON.parse(await readFile(file, 'utf8'));
  } catch (e) {
    throw new AdaptError('STATS_FILE_INVALID', `cannot read intensity curve ${file}: ${(e as Error).message}`);
  }
  return parseCurve(raw, file);
}
