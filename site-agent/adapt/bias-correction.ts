/**
 * Label-free, source-free intensity-inhomogeneity (bias-field) correction by information minimisation: Likar, Viergever
 * & Pernuš, "Retrospective correction of MR intensity inhomogeneity by information minimization", IEEE TMI 20(12),
 * 2001, pp. 1398-1410. Their sec. II: the acquired image is the true image times a smooth multiplicative field (plus
 * an additive one, which is left out here); the correction is a linear combination of smooth basis functions
 * (polynomials, sec. II-B); its coefficients minimise the Shannon entropy H = -Σ_i p_i log p_i of the corrected
 * image's intensity histogram (sec. II-C), under the constraint that the correction preserves the mean intensity,
 * which rules out the trivial solution of shrinking the image to one bin; they search with Powell's method, we with
 * Nelder-Mead (nelder-mead.ts), both derivative-free. N3 (Sled, Zijdenbos & Evans, IEEE TMI 17(1), 1998) sharpens
 * the log-intensity histogram instead; the premise is the same: a bias field blurs the histogram's tissue peaks.
 *
 * Model, per group G of voxels (one case's slices in their order, or one slice):
 *   u(x) = s · y(x) / b(x),   b(x) = exp(Σ_k c_k φ_k(x)),   s = Σ_{fg} y / Σ_{fg} y/b   (mean over the foreground kept)
 * with y = (v - lo) / (hi - lo) the image mapped so that its 0.5 / 99.5 % quantiles are 0 / 1: images arrive
 * z-scored (their background is not 0), and a multiplicative field needs the zero of the signal, taken as the
 * darkest level. φ_k are products of Legendre polynomials P_a(x) P_b(y) P_c(z) with 1 <= a + b + c <= degree over
 * normalised coordinates in [-1, 1] (z: the slice's place in its case; no z terms per slice). The entropy is of a
 * Parzen-smoothed histogram of u over the foreground (y > `foreground`): linear binning, then a Gaussian of one bin,
 * so that H changes smoothly with c. The corrected group is mapped back (v = lo + (hi - lo) u) and, with
 * `restandardise`, given the mean and standard deviation the group had, so that a z-scored case stays z-scored.
 *
 * The correction is refitted on every image it is applied to (adaptation and inference alike): its settings, not its
 * coefficients, are what the input curve records (intensity-curve.ts, version 3).
 */
import { z } from 'zod';
import { describeFirstIssue } from '../../protocol/common/index.ts';
import { AdaptError } from './adapt-error.ts';
import { nelderMead, type NelderMeadResult } from './nelder-mead.ts';
import type { UnlabeledSlices } from './unlabeled-slices.ts';

/** The correction's settings, stored with the input curve (every field that changes the output). */
export const BiasCorrectionSchema = z
  .object({
    kind: z.literal('entropy-polynomial'),
    /** Total degree of the polynomial log-field. */
    degree: z.number().int().min(1).max(3),
    /** 'case': one 3D field per case (its slices in their order); 'slice': one 2D field per slice. */
    scope: z.enum(['case', 'slice']),
    /** Histogram bins over [0, 2] (y units: the group's 99.5 % quantile is 1). */
    bins: z.number().int().min(16).max(1024),
    /** Foreground: y above this fraction of the robust range (0.5-99.5 % quantiles). */
    foreground: z.number().min(0).max(0.9),
    /** Foreground voxels sampled (strided) for the entropy. */
    maxSamples: z.number().int().min(64).max(1_000_000),
    /** Objective evaluations of the search per group. */
    maxEvaluations: z.number().int().min(1).max(100_000),
    /** Bound on |c_k| (a field beyond exp(±bound) per term is not a coil's). */
    maxCoefficient: z.number().positive().max(10),
    /**
     * Entropy decrease (nats) a field must reach to be applied; below it the group is left as it is. The search finds
     * some field on any image (noise): on the suite's tuning seeds (101-103) the fields found on families without a
     * strong bias field lowered the entropy by 0.001-0.011 nats on average and cost up to 0.02 Dice (phantom gamma),
     * those on the bias family by 0.05-0.30.
     */
    minEntropyDecrease: z.number().min(0).max(10),
    /** Keep the basis terms even in every coordinate (centre against periphery; see `basisExponents`). */
    evenTerms: z.boolean(),
    /** Give each corrected group its own former mean and standard deviation. */
    restandardise: z.boolean(),
  })
  .strict();

export type BiasCorrection = z.infer<typeof BiasCorrectionSchema>;
export type BiasCorrectionOptions = Partial<Omit<BiasCorrection, 'kind'>>;

export const DEFAULT_BIAS_CORRECTION: BiasCorrection = {
  kind: 'entropy-polynomial',
  degree: 2,
  scope: 'case',
  bins: 128,
  foreground: 0.1,
  maxSamples: 4096,
  maxEvaluations: 1200,
  maxCoefficient: 1.5,
  minEntropyDecrease: 0.02,
  evenTerms: false,
  restandardise: true,
};

/** The full settings for `opts` (defaults filled in), validated. */
export function resolveBiasCorrection(opts: BiasCorrectionOptions = {}): BiasCorrection {
  const r = BiasCorrectionSchema.safeParse({ ...DEFAULT_BIAS_CORRECTION, ...opts });
  if (!r.success) throw new AdaptError('BAD_OPTION', describeFirstIssue(r.error, { prefix: 'biasCorrection.', root: '' }));
  return r.data;
}

/** What the correction did to one group. */
export interface GroupCorrection {
  readonly slices: number;
  /** Entropy (nats) of the foreground histogram before and after; equal when the group was left as it was. */
  readonly entropyBefore: number;
  readonly entropyAfter: number;
  /** max b / min b over the group's foreground (1: no field). */
  readonly fieldRange: number;
  /** Why the group was left unchanged, if it was. */
  readonly skipped?: 'constant' | 'no-foreground';
}

function legendre(a: number, t: number): number {
  switch (a) {
    case 0:
      return 1;
    case 1:
      return t;
    case 2:
      return 1.5 * t * t - 0.5;
    default:
      return 2.5 * t * t * t - 1.5 * t;
  }
}

/**
 * Exponents (a, b, c) of the basis, 1 <= a + b + c <= degree; c = 0 when `with3d` is false. Without `evenTerms`, the
 * products even in every coordinate (P_2(x), P_2(y), P_2(z), ...) are left out: such a field brightens the centre
 * against the periphery, and anatomy arranged in shells (white matter inside grey matter; the phantoms' nested
 * tissues) lets the entropy fall by merging an inner and an outer tissue into one histogram peak instead of removing
 * a field (on the unit test's phantom, with them: entropy 2.98 nats at a x21 "field" that merges the tissues, 3.18 at
 * the true field).
 */
export function basisExponents(degree: number, with3d: boolean, evenTerms = false): [number, number, number][] {
  const out: [number, number, number][] = [];
  for (let total = 1; total <= degree; total++) {
    for (let c = 0; c <= (with3d ? total : 0); c++) {
      for (let b = 0; b <= total - c; b++) {
        const e: [number, number, number] = [total - b - c, b, c];
        if (evenTerms || e.some((x) => x % 2 === 1)) out.push(e);
      }
    }
  }
  return out;
}

/** The entropy's histogram spans the centred log intensities ± this many nats. */
const LOG_HALF_RANGE = 3;

function quantiles(v: Float32Array, ps: readonly number[]): number[] {
  const stride = Math.max(1, Math.floor(v.length / 50_000));
  const s: number[] = [];
  for (let i = 0; i < v.length; i += stride) if (Number.isFinite(v[i])) s.push(v[i]);
  s.sort((a, b) => a - b);
  return ps.map((p) => s[Math.min(s.length - 1, Math.max(0, Math.round(p * (s.length - 1))))] ?? 0);
}

/** Entropy (nats) of the Parzen-smoothed histogram of `u` over [0, 2) (`bins` bins; values outside go to the end bins). */
function histogramEntropy(u: Float64Array, bins: number, hist: Float64Array, smooth: Float64Array): number {
  hist.fill(0);
  const scale = bins / 2;
  for (let i = 0; i < u.length; i++) {
    // Linear (triangular-kernel) binning: the mass splits between the two nearest bin centres.
    const p = Math.min(bins - 1, Math.max(0, u[i] * scale - 0.5));
    const j = Math.floor(p);
    const t = p - j;
    hist[j] += 1 - t;
    if (j + 1 < bins) hist[j + 1] += t;
  }
  // Gaussian of one bin (kernel 0.054, 0.242, 0.399, 0.242, 0.054, renormalised at the edges by the total below).
  const k = [0.054, 0.242, 0.399, 0.242, 0.054];
  let total = 0;
  for (let j = 0; j < bins; j++) {
    let s = 0;
    for (let d = -2; d <= 2; d++) {
      const q = j + d;
      if (q >= 0 && q < bins) s += k[d + 2] * hist[q];
    }
    smooth[j] = s;
    total += s;
  }
  let h = 0;
  for (let j = 0; j < bins; j++) {
    const p = smooth[j] / total;
    if (p > 0) h -= p * Math.log(p);
  }
  return h;
}

/** A group's voxel grid (s slices of h x w), its robust range (y = (v - lo) / span) and the exponents of its basis. */
interface GroupGrid {
  readonly s: number;
  readonly h: number;
  readonly w: number;
  readonly lo: number;
  readonly span: number;
  readonly exps: readonly (readonly [number, number, number])[];
}

/** The foreground sample the entropy is measured on: y per voxel and its basis values (k per voxel, row after row). */
interface FieldSample {
  readonly ys: number[];
  readonly phi: number[];
  readonly k: number;
}

/** Normalised coordinates in [-1, 1] of voxel `i` (z: the slice's place in the group; 0 for a single slice). */
function voxelCoord(g: GroupGrid, i: number): [number, number, number] {
  const px = g.h * g.w;
  const sl = Math.floor(i / px);
  const r = Math.floor((i % px) / g.w);
  const c = i % g.w;
  return [(2 * (c + 0.5)) / g.w - 1, (2 * (r + 0.5)) / g.h - 1, g.s > 1 ? (2 * (sl + 0.5)) / g.s - 1 : 0];
}

/** The basis values φ_j at voxel `i`, written to out[at .. at + k). */
function basisAt(g: GroupGrid, i: number, out: number[] | Float64Array, at: number): void {
  const [x, y, zz] = voxelCoord(g, i);
  for (let j = 0; j < g.exps.length; j++) out[at + j] = legendre(g.exps[j][0], x) * legendre(g.exps[j][1], y) * legendre(g.exps[j][2], zz);
}

/** Strided sample of the foreground (the entropy's support), with its basis values; undefined when it is too small. */
function sampleForeground(v: Float32Array, g: GroupGrid, spec: BiasCorrection): FieldSample | undefined {
  const k = g.exps.length;
  let fgCount = 0;
  for (let i = 0; i < v.length; i++) if ((v[i] - g.lo) / g.span > spec.foreground) fgCount++;
  if (fgCount < Math.max(64, 4 * k)) return undefined;
  const stride = Math.max(1, Math.ceil(fgCount / spec.maxSamples));
  const ys: number[] = [];
  const phi: number[] = [];
  for (let i = 0, seen = 0; i < v.length; i++) {
    const y = (v[i] - g.lo) / g.span;
    if (!(y > spec.foreground)) continue;
    if (seen++ % stride !== 0) continue;
    ys.push(y);
    basisAt(g, i, phi, phi.length);
  }
  return { ys, phi, k };
}

/** The entropy without a field, and the coefficients minimising it (two Nelder-Mead legs, within ±maxCoefficient). */
function searchField(sample: FieldSample, spec: BiasCorrection): { entropyBefore: number; best: NelderMeadResult } {
  const { ys, phi, k } = sample;
  const m = ys.length;
  const logY = Float64Array.from(ys, (y) => Math.log(y));
  const u = new Float64Array(m);
  const hist = new Float64Array(spec.bins);
  const smooth = new Float64Array(spec.bins);
  const entropy = (c: readonly number[]): number => {
    if (c.some((cj) => Math.abs(cj) > spec.maxCoefficient)) return Infinity;
    // log u = log y - log b, centred: a constant factor is a shift of log u, which the entropy does not see.
    let sum = 0;
    for (let i = 0; i < m; i++) {
      let l = 0;
      for (let j = 0; j < k; j++) l += c[j] * phi[i * k + j];
      u[i] = logY[i] - l;
      sum += u[i];
    }
    const mean = sum / m;
    for (let i = 0; i < m; i++) u[i] = (u[i] - mean + LOG_HALF_RANGE) / LOG_HALF_RANGE;
    return histogramEntropy(u, spec.bins, hist, smooth);
  };
  const zero = new Array<number>(k).fill(0);
  const entropyBefore = entropy(zero);
  // Two legs: a fresh simplex around the first leg's result escapes an early collapse of the first.
  const first = nelderMead(entropy, zero, { step: 0.2, maxEvaluations: Math.ceil(spec.maxEvaluations * 0.6), fTol: 1e-7, xTol: 1e-3 });
  const second = nelderMead(entropy, first.x, { step: 0.05, maxEvaluations: Math.max(1, spec.maxEvaluations - first.evaluations), fTol: 1e-7, xTol: 1e-3 });
  return { entropyBefore, best: second.f <= first.f ? second : first };
}

/** Divides the group by the field exp(Σ c_k φ_k) in place (mean-preserving scale, then restandardised); returns its range. */
function applyField(v: Float32Array, g: GroupGrid, sample: FieldSample, c: readonly number[], spec: BiasCorrection): number {
  const { ys, phi, k } = sample;
  // The mean-preserving scale (Likar et al., sec. II-C) on the sample, then applied to the whole group.
  let sumY = 0;
  let sumU = 0;
  for (let i = 0; i < ys.length; i++) {
    let l = 0;
    for (let j = 0; j < k; j++) l += c[j] * phi[i * k + j];
    sumY += ys[i];
    sumU += ys[i] * Math.exp(-l);
  }
  const sc = sumY / sumU;
  const b = new Float64Array(k);
  let minL = Infinity;
  let maxL = -Infinity;
  let mean0 = 0;
  for (let i = 0; i < v.length; i++) mean0 += v[i];
  mean0 /= v.length;
  let var0 = 0;
  for (let i = 0; i < v.length; i++) var0 += (v[i] - mean0) ** 2;
  var0 /= v.length;
  for (let i = 0; i < v.length; i++) {
    basisAt(g, i, b, 0);
    let l = 0;
    for (let j = 0; j < k; j++) l += c[j] * b[j];
    const y = (v[i] - g.lo) / g.span;
    if (y > spec.foreground) {
      minL = Math.min(minL, l);
      maxL = Math.max(maxL, l);
    }
    v[i] = g.lo + g.span * sc * y * Math.exp(-l);
  }
  if (spec.restandardise) restandardise(v, mean0, Math.sqrt(var0));
  return Math.exp(maxL - minL);
}

/**
 * Corrects one group of `s` slices (h x w, stacked in `v`) in place; returns what it did.
 * `v` holds the group's voxels only, slice after slice, in their order in the case.
 */
export function correctGroup(v: Float32Array, s: number, h: number, w: number, spec: BiasCorrection): GroupCorrection {
  if (v.length !== s * h * w) throw new AdaptError('BAD_SHAPE', `bias correction: expected ${s * h * w} voxels, got ${v.length}`);
  const [lo, hi] = quantiles(v, [0.005, 0.995]);
  if (!(hi - lo > 1e-6)) return { slices: s, entropyBefore: 0, entropyAfter: 0, fieldRange: 1, skipped: 'constant' };
  const grid: GroupGrid = { s, h, w, lo, span: hi - lo, exps: basisExponents(spec.degree, spec.scope === 'case' && s > 1, spec.evenTerms) };
  const sample = sampleForeground(v, grid, spec);
  if (sample === undefined) return { slices: s, entropyBefore: 0, entropyAfter: 0, fieldRange: 1, skipped: 'no-foreground' };
  const { entropyBefore, best } = searchField(sample, spec);
  // A field that does not lower the entropy clearly is no field (noise alone makes the search find a small one).
  if (!(best.f < entropyBefore - spec.minEntropyDecrease)) return { slices: s, entropyBefore, entropyAfter: entropyBefore, fieldRange: 1 };
  return { slices: s, entropyBefore, entropyAfter: best.f, fieldRange: applyField(v, grid, sample, best.x, spec) };
}

function restandardise(v: Float32Array, mean: number, std: number): void {
  let m = 0;
  for (let i = 0; i < v.length; i++) m += v[i];
  m /= v.length;
  let vv = 0;
  for (let i = 0; i < v.length; i++) vv += (v[i] - m) ** 2;
  const sd = Math.sqrt(vv / v.length);
  if (!(sd > 1e-12)) return;
  for (let i = 0; i < v.length; i++) v[i] = mean + ((v[i] - m) * std) / sd;
}

/** Slice indices of each group: the slices of a case in their order (case scope), or one slice each. */
export function correctionGroups(target: UnlabeledSlices, scope: BiasCorrection['scope']): number[][] {
  if (scope === 'slice') return Array.from({ length: target.n }, (_, i) => [i]);
  const byCase = new Map<string, number[]>();
  for (let i = 0; i < target.n; i++) {
    const id = target.caseIds[i] ?? `slice-${i}`;
    const g = byCase.get(id);
    if (g) g.push(i);
    else byCase.set(id, [i]);
  }
  return [...byCase.values()];
}

export interface BiasCorrectionResult {
  readonly target: UnlabeledSlices;
  readonly groups: GroupCorrection[];
}

/** The images corrected group by group (a new array; same slices, case ids and spacing), with what was done. */
export function correctBiasField(target: UnlabeledSlices, spec: BiasCorrection): BiasCorrectionResult {
  if (target.channels !== 1) throw new AdaptError('BAD_SHAPE', `the bias-field correction applies to 1-channel images, got ${target.channels} channels`);
  const px = target.height * target.width;
  if (target.images.length !== target.n * px) throw new AdaptError('BAD_SHAPE', `bias correction: expected n*h*w = ${target.n * px} values, got ${target.images.length}`);
  const out = new Float32Array(target.images);
  const groups: GroupCorrection[] = [];
  for (const idx of correctionGroups(target, spec.scope)) {
    const v = new Float32Array(idx.length * px);
    idx.forEach((sl, j) => v.set(out.subarray(sl * px, (sl + 1) * px), j * px));
    groups.push(correctGroup(v, idx.length, target.height, target.width, spec));
    idx.forEach((sl, j) => out.set(v.subarray(j * px, (j + 1) * px), sl * px));
  }
  return { target: { ...target, images: out }, groups };
}

/**
 * Memo of corrections by content: the input curve applies the correction to the same images many times (fitting,
 * label-free scoring, the safeguard's perturbed copy, evaluation; the suite's rows share one target), and it is
 * deterministic. Keyed by a hash of every value (so an array changed in place, or an equal copy, is recognised), the
 * shape, the case ids and the settings; the oldest entries go first beyond `MEMO_ENTRIES`.
 */
const memo = new Map<string, BiasCorrectionResult>();
const MEMO_ENTRIES = 48;

function memoKey(target: UnlabeledSlices, spec: BiasCorrection): string {
  const bits = new Uint32Array(target.images.buffer, target.images.byteOffset, target.images.length);
  // Two independent 32-bit FNV-1a style hashes of the raw bits (64 bits in all: collisions are not a concern here).
  let h1 = 2166136261;
  let h2 = 0x9747b28c;
  for (let i = 0; i < bits.length; i++) {
    h1 = Math.imul(h1 ^ bits[i], 16777619) >>> 0;
    h2 = Math.imul(h2 ^ bits[i], 0x5bd1e995) >>> 0;
    h2 ^= h2 >>> 15;
  }
  return `${JSON.stringify(spec)}|${target.n}x${target.height}x${target.width}|${h1.toString(16)}.${h2.toString(16)}|${target.caseIds.join(',')}`;
}

/** `correctBiasField`, memoised (see `memo`): what the input curve applies. */
export function applyBiasCorrection(spec: BiasCorrection, target: UnlabeledSlices): BiasCorrectionResult {
  const key = memoKey(target, spec);
  let hit = memo.get(key);
  if (!hit) {
    hit = correctBiasField(target, spec);
    memo.set(key, hit);
    if (memo.size > MEMO_ENTRIES) memo.delete(memo.keys().next().value!);
  }
  // A copy: the memo's array must not be changed by whoever receives it.
  return { target: { ...target, images: new Float32Array(hit.target.images) }, groups: hit.groups };
}

/** One line on what the correction did (for the adapter's note). */
export function biasCorrectionNote(groups: readonly GroupCorrection[]): string {
  const done = groups.filter((g) => g.skipped === undefined);
  const fitted = done.filter((g) => g.fieldRange > 1);
  const meanOf = (f: (g: GroupCorrection) => number): number => (done.length ? done.reduce((s, g) => s + f(g), 0) / done.length : 0);
  const maxRange = Math.max(1, ...fitted.map((g) => g.fieldRange));
  return `bias field corrected in ${fitted.length} of ${groups.length} group(s) (entropy ${meanOf((g) => g.entropyBefore).toFixed(3)} -> ${meanOf((g) => g.entropyAfter).toFixed(3)} nats, field range up to x${maxRange.toFixed(2)})`;
}
