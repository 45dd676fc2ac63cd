/**
 * Band-permutation starts for the input adapter (input-adapter.ts): a discrete search over the ORDER of the target's
 * intensity bands, for contrast reorderings (MR sequences: T1 / T2 / FLAIR keep homogeneous tissues homogeneous, but
 * change which tissue is brighter than which). Gradient descent on the curve values from the identity, the negation or
 * random curves does not cross from one band order to another (each order is a separate basin of the BN-statistics
 * objective); enumerating the orders does.
 *
 * 1. Bands, label-free: the pooled target intensities are split into M bands by multi-level Otsu thresholding (Otsu,
 *    "A threshold selection method from gray-level histograms", IEEE Trans. SMC 9(1), 1979: thresholds maximising the
 *    between-class variance σ²_B, equivalently minimising the within-class variance σ²_W = Σ_j ω_j σ²_j), solved
 *    exactly on a histogram by dynamic programming over the sorted bins (the 1-D k-means recursion of Wang & Song,
 *    "Ckmeans.1d.dp", The R Journal 3(2), 2011): D[m][b] = min_a D[m-1][a-1] + SSE(bins a..b).
 * 2. Starts: band j spans its within-band quantiles [lo_j, hi_j] (knots lo_1 < hi_1 < lo_2 < ... < hi_M); the start for
 *    a permutation π maps lo_j -> lo_π(j), hi_j -> hi_π(j): band j takes band π(j)'s place and spread, keeping its own
 *    texture (monotone inside the band). The levels are the target's own, so no source intensity is needed; π = id is
 *    exactly the identity curve.
 * 3. Screening: every permutation (M! - 1 without the identity, at most `maxPermutations`) is scored by the adapter's
 *    objective (source-BN-statistics KL, DeepInversion eq. 4 as FSM sec. 3.1's source description; adapter-objective.ts)
 *    on the whole target after a few Adam steps; the best `refine` are refined further, the best of them moved onto the
 *    adapter's own knots and refined there.
 * The adapter then keeps the best refined permutation only past a label-free guard (input-adapter.ts,
 * `BandPermutationOptions`).
 */
import type { UNet } from '../model/index.ts';
import type { Rng } from '../../protocol/common/index.ts';
import { AdaptError } from './adapt-error.ts';
import { argMin, refine, scoreAfterAdaBn, scoreObjective, type Resolved, type Targets } from './adapter-objective.ts';
import type { AdapterCandidate } from './input-adapter.ts';
import { basisMatrix, evalCurve, makeCurve, type IntensityCurve } from './intensity-curve.ts';
import { resolveRestartAgreement, restartAgreement, type RestartAgreementOptions } from './restart-agreement.ts';
import type { UnlabeledSlices } from './unlabeled-slices.ts';
import { classesVanished } from './safeguard.ts';

/**
 * The band-permutation search (`InputAdapterOptions.bandPermutations`). The best refined permutation replaces the
 * adapter's pick only when (a) its objective on the whole target is lower than the pick's and (b) its mean prediction
 * entropy after AdaBN is not higher (the wide search's guard, `WideSearchOptions`: the objective alone is not a safe
 * selector once the search leaves the identity / negation). The band order gets more Adam steps (40 + 20) than the
 * pick (40); refining the pick 20 steps further for the comparison changed none of the 10 decisions re-checked on the
 * tuning seeds (session 7), so it is not done. Cost (4 bands): 23 x 4 + 2 x 36 + 20 Adam steps, 26 whole-target
 * scorings and 2 AdaBN passes, about 0.8x the narrow search's 6 x 40 steps; off by default (see `InputAdapterOptions`).
 */
export interface BandPermutationOptions {
  /** Intensity bands M. Default: the model's number of classes. */
  readonly bands?: number;
  /** Permutations screened at most (M! - 1 of them exist). Default 120 (every order for M <= 5). */
  readonly maxPermutations?: number;
  /** Adam steps every permutation's start is refined before the screening score (0: the starts are scored as they are). Default 4 (at most the adapter's `steps`). */
  readonly screenSteps?: number;
  /**
   * Best screened permutations refined. Default 2; 4 with `selection: 'restart-agreement'` (the order that segments
   * mricron reorder 102 best was 4th after screening: tuning seeds, session 9).
   */
  readonly refine?: number;
  /** Adam steps per refined permutation on the band knots, its screening steps included. Default: the adapter's `steps`. */
  readonly steps?: number;
  /** Adam steps of the best permutation's curve moved onto the adapter's own knots (evaluated there). Default: half the adapter's `steps` (20). */
  readonly finalSteps?: number;
  /** Within-band quantiles of the two knots per band. Default [0.1, 0.9]. */
  readonly bandQuantiles?: readonly [number, number];
  /** Histogram bins for the Otsu thresholds. Default 128. */
  readonly bins?: number;
  /**
   * How the pick is made among the adapter's pick and the refined orders. 'guard' (default): the best refined order by
   * objective replaces the pick past the objective + entropy guard above. 'restart-agreement': the candidate whose
   * segmentation of the target comes back most often when its curve is perturbed and re-fitted (restart-agreement.ts)
   * replaces the pick when its mean target entropy after AdaBN is not higher than the pick's (no objective condition).
   * Opt-in. Tuning seeds 101-103 (session 9), adapter + AdaBN, against 'guard' on the same candidates:
   * - mricron reorder 0.542 -> 0.601 (the best of the candidates on every seed);
   * - mricron low-field 0.757 -> 0.777;
   * - mricron gamma 101 -0.037 and phantom bias 101 -0.031 (the most stable order also had lower entropy);
   * - the other published cells unchanged.
   * Cost: about +35-40 s per mricron suite fit (5 candidates x 3 re-fits x 40 steps).
   */
  readonly selection?: 'guard' | 'restart-agreement';
  /** Settings of the 'restart-agreement' selection (ignored by 'guard'). */
  readonly agreement?: RestartAgreementOptions;
}

/** The band search's settings with their defaults. */
export type ResolvedBandPermutations = Required<Omit<BandPermutationOptions, 'agreement'>> & { readonly agreement: Required<RestartAgreementOptions> };

export interface IntensityBands {
  /** M - 1 thresholds between the bands, ascending. */
  readonly thresholds: number[];
  /** Mean intensity of each band. */
  readonly means: number[];
  /** Fraction of the pixels in each band. */
  readonly weights: number[];
}

/**
 * Exact multi-level Otsu thresholds of `values` into `m` bands (on a `bins`-bin histogram between the 0.1% and 99.9%
 * quantiles; values beyond go to the end bins).
 * @example
 * intensityBands(Float32Array.from([0, 0, 1, 1, 5, 5]), 3).means; // ≈ [0, 1, 5]
 */
export function intensityBands(values: Float32Array, m: number, bins = 128): IntensityBands {
  if (!Number.isInteger(m) || m < 2) throw new AdaptError('BAD_OPTION', `intensity bands: need at least 2 bands, got ${m}`);
  if (!Number.isInteger(bins) || bins < m) throw new AdaptError('BAD_OPTION', `intensity bands: need at least as many bins as bands, got ${bins} bins for ${m} bands`);
  const sample = strided(values);
  if (sample.length === 0) throw new AdaptError('EMPTY_TARGET', 'no intensities to split into bands');
  const lo = sample[Math.floor(0.001 * (sample.length - 1))];
  const hi = sample[Math.ceil(0.999 * (sample.length - 1))];
  if (!(hi > lo)) throw new AdaptError('BAD_SHAPE', `the target intensities are constant (${lo}); no bands`);
  const width = (hi - lo) / bins;
  const w = new Float64Array(bins);
  const s1 = new Float64Array(bins);
  const s2 = new Float64Array(bins);
  for (const v of sample) {
    const b = Math.min(bins - 1, Math.max(0, Math.floor((v - lo) / width)));
    w[b] += 1;
    s1[b] += v;
    s2[b] += v * v;
  }
  // Prefix sums: SSE of bins a..b (inclusive) = Σv² - (Σv)²/n.
  const W = prefix(w);
  const S1 = prefix(s1);
  const S2 = prefix(s2);
  const sse = (a: number, b: number): number => {
    const n = W[b + 1] - W[a];
    if (n === 0) return 0;
    const s = S1[b + 1] - S1[a];
    return S2[b + 1] - S2[a] - (s * s) / n;
  };
  // D[j][b]: least within-band SSE of bins 0..b in j + 1 bands; from[j][b]: first bin of the last band.
  const D = Array.from({ length: m }, () => new Float64Array(bins).fill(Infinity));
  const from = Array.from({ length: m }, () => new Int32Array(bins));
  for (let b = 0; b < bins; b++) D[0][b] = sse(0, b);
  for (let j = 1; j < m; j++) {
    for (let b = j; b < bins; b++) {
      for (let a = j; a <= b; a++) {
        const c = D[j - 1][a - 1] + sse(a, b);
        if (c < D[j][b]) {
          D[j][b] = c;
          from[j][b] = a;
        }
      }
    }
  }
  const starts: number[] = [];
  let b = bins - 1;
  for (let j = m - 1; j >= 1; j--) {
    const a = from[j][b];
    starts.unshift(a);
    b = a - 1;
  }
  const thresholds = starts.map((a) => lo + a * width);
  const edges = [0, ...starts, bins];
  const total = W[bins];
  const means = edges.slice(0, -1).map((a, j) => {
    const n = W[edges[j + 1]] - W[a];
    return n > 0 ? (S1[edges[j + 1]] - S1[a]) / n : lo + ((a + edges[j + 1]) / 2) * width;
  });
  const weights = edges.slice(0, -1).map((a, j) => (W[edges[j + 1]] - W[a]) / total);
  return { thresholds, means, weights };
}

/**
 * Two knots per band, at the band's within-band quantiles (ascending, strictly increasing: a band too narrow for two
 * distinct knots keeps one at its median). Returns the knots and, for each knot, its band and its rank in the band.
 */
export function bandKnots(values: Float32Array, bands: IntensityBands, q: readonly [number, number] = [0.1, 0.9]): { knots: number[]; band: number[] } {
  const sample = strided(values);
  const m = bands.thresholds.length + 1;
  const knots: number[] = [];
  const band: number[] = [];
  const minGap = (sample[sample.length - 1] - sample[0]) / (64 * m);
  let start = 0;
  for (let j = 0; j < m; j++) {
    let end = start;
    while (end < sample.length && (j === m - 1 || sample[end] < bands.thresholds[j])) end++;
    if (end > start) {
      const at = (p: number): number => sample[start + Math.min(end - start - 1, Math.max(0, Math.round(p * (end - start - 1))))];
      const cands = at(q[1]) - at(q[0]) >= minGap ? [at(q[0]), at(q[1])] : [at(0.5)];
      for (const x of cands) {
        if (knots.length === 0 || x - knots[knots.length - 1] >= minGap) {
          knots.push(x);
          band.push(j);
        }
      }
    }
    start = end;
  }
  if (knots.length < 2) throw new AdaptError('BAD_SHAPE', 'intensity bands: fewer than 2 distinct band knots (near-constant target)');
  return { knots, band };
}

/**
 * The start values for permutation `perm` (perm[j] = the band whose place band j takes): each knot of band j moves to
 * the knot of the same within-band rank in band perm[j] (the band's first / last knot when that band has only one).
 */
export function permutationValues(knots: readonly number[], band: readonly number[], perm: readonly number[]): number[] {
  const ofBand = (j: number): number[] => knots.filter((_, i) => band[i] === j);
  return knots.map((_, i) => {
    const own = ofBand(band[i]);
    const rank = own.length === 1 ? 0.5 : own.indexOf(knots[i]) / (own.length - 1);
    const dest = ofBand(perm[band[i]]);
    if (dest.length === 0) return knots[i];
    if (dest.length === 1) return dest[0];
    return rank < 0.5 ? dest[0] : rank > 0.5 ? dest[dest.length - 1] : (dest[0] + dest[dest.length - 1]) / 2;
  });
}

/** All permutations of 0..m-1 but the identity, in lexicographic order; at most `cap` (a seeded sample beyond). */
export function bandPermutations(m: number, cap: number, rng: Rng): number[][] {
  const all: number[][] = [];
  const walk = (prefix: number[], rest: number[]): void => {
    if (rest.length === 0) {
      if (prefix.some((p, i) => p !== i)) all.push(prefix);
      return;
    }
    for (const r of rest) walk([...prefix, r], rest.filter((x) => x !== r));
  };
  if (m > 8) throw new AdaptError('BAD_OPTION', `inputAdapter.bandPermutations.bands: at most 8 bands, got ${m}`);
  walk([], Array.from({ length: m }, (_, i) => i));
  if (all.length <= cap) return all;
  return rng.shuffle(all).slice(0, cap);
}

export interface BandPermutationCandidate {
  readonly permutation: number[];
  /** Objective on the whole target after the screening steps. */
  readonly screened: number;
  /** Objective on the whole target after refinement. */
  readonly score: number;
  readonly curve: IntensityCurve;
}

export function resolveBandPermutations(p: BandPermutationOptions, numClasses: number, steps: number): ResolvedBandPermutations {
  const selection = p.selection ?? 'guard';
  if (selection !== 'guard' && selection !== 'restart-agreement') throw new AdaptError('BAD_OPTION', `inputAdapter.bandPermutations.selection must be 'guard' or 'restart-agreement', got ${String(selection)}`);
  const agreement = resolveRestartAgreement(p.agreement ?? {}, Math.max(1, steps));
  const r = { bands: p.bands ?? numClasses, maxPermutations: p.maxPermutations ?? 120, screenSteps: p.screenSteps ?? Math.min(4, steps), refine: p.refine ?? (selection === 'restart-agreement' ? 4 : 2), steps: p.steps ?? steps, finalSteps: p.finalSteps ?? Math.round(steps / 2), bandQuantiles: p.bandQuantiles ?? ([0.1, 0.9] as const), bins: p.bins ?? 128, selection, agreement };
  for (const [name, v, min] of [['bands', r.bands, 2], ['maxPermutations', r.maxPermutations, 1], ['screenSteps', r.screenSteps, 0], ['refine', r.refine, 1], ['steps', r.steps, 0], ['finalSteps', r.finalSteps, 0], ['bins', r.bins, 2]] as const) {
    if (!Number.isInteger(v) || v < min) throw new AdaptError('BAD_OPTION', `inputAdapter.bandPermutations.${name} must be an integer >= ${min}, got ${v}`);
  }
  if (r.bands > 8) throw new AdaptError('BAD_OPTION', `inputAdapter.bandPermutations.bands: at most 8 bands, got ${r.bands}`);
  const [a, b] = r.bandQuantiles;
  if (!(a >= 0 && b <= 1 && a < b)) throw new AdaptError('BAD_OPTION', `inputAdapter.bandPermutations.bandQuantiles must be 0 <= lo < hi <= 1, got ${JSON.stringify(r.bandQuantiles)}`);
  return r;
}

/** Screens every band order on the whole target, refines the best `refine`, scores them on the whole target (best first). */
export function bandPermutationCandidates(unet: UNet, target: UnlabeledSlices, t: Targets, o: Resolved, p: ResolvedBandPermutations, rng: Rng): { bands: IntensityBands; candidates: BandPermutationCandidate[] } {
  const bands = intensityBands(target.images, p.bands, p.bins);
  const { knots, band } = bandKnots(target.images, bands, p.bandQuantiles);
  const basis = basisMatrix(knots, target.images);
  const perms = bandPermutations(p.bands, p.maxPermutations, rng);
  // The starts' levels are the target's own, not the source's: a few Adam steps let each order settle its levels
  // before the orders are compared (ranking the raw starts put the right order of mricron reorder 101 6th of 23), and
  // the comparison is on the whole target (one batch of 8 of 32 slices ranked the orders of mricron reorder 102 apart
  // from their whole-target objectives: tuning seeds, session 7).
  const screened = perms.map((perm) => {
    const start = permutationValues(knots, band, perm);
    const values = p.screenSteps > 0 ? refine(unet, target, basis, start, t, { ...o, steps: p.screenSteps }, rng) : start;
    return { perm, values, screened: scoreObjective(unet, target, basis, knots.length, makeCurve(knots, values), t, o) };
  });
  screened.sort((a, b) => a.screened - b.screened);
  const candidates = screened.slice(0, p.refine).map((c) => {
    const curve = makeCurve(knots, refine(unet, target, basis, c.values, t, { ...o, steps: p.steps - p.screenSteps > 0 ? p.steps - p.screenSteps : 0 }, rng));
    return { permutation: c.perm, screened: c.screened, curve, score: scoreObjective(unet, target, basis, knots.length, curve, t, o) };
  });
  const best = argMin(candidates);
  return { bands, candidates: [candidates[best], ...candidates.filter((_, i) => i !== best)] };
}

function strided(values: Float32Array): number[] {
  const stride = Math.max(1, Math.floor(values.length / 200_000));
  const sample: number[] = [];
  for (let i = 0; i < values.length; i += stride) if (Number.isFinite(values[i])) sample.push(values[i]);
  return sample.sort((a, b) => a - b);
}

function prefix(a: Float64Array): Float64Array {
  const p = new Float64Array(a.length + 1);
  for (let i = 0; i < a.length; i++) p[i + 1] = p[i] + a[i];
  return p;
}

/**
 * The band search's guard: `other` replaces the pick only when its mean target entropy after AdaBN is not higher AND no
 * class that the anatomy has (source prior >= 1%) vanishes under it that the pick predicts (below a tenth of its prior
 * share: the safeguard's `CLASS_VANISHED` rule, the weakest form of the class-ratio prior, Bateson et al., MedIA 2022).
 * Why the second test: a band order can be certain and wrong. On mricron inversion 102 (tuning seeds, session 11) the
 * order [2,3,1,0] had a lower objective (0.0181 < 0.0232) and entropy (0.0575 <= 0.0634) than the negation but
 * predicted class 3 (prior 0.038) in 0.1% of the pixels; the adapted model was then thrown away by the safeguard
 * (Dice 0.006 instead of the negation's 0.816). `priors` null (no source statistics): entropy only.
 */
function entropyGuard(unet: UNet, target: UnlabeledSlices, o: Resolved, pick: IntensityCurve, other: IntensityCurve, priors: readonly number[] | null): { take: boolean; text: string } {
  const a = scoreAfterAdaBn(unet, target, pick, o.batchSize);
  const b = scoreAfterAdaBn(unet, target, other, o.batchSize);
  const gone = priors ? classesVanished(priors, a.proportions, b.proportions) : [];
  const take = b.entropy <= a.entropy && gone.length === 0;
  const vanished = gone.length > 0 ? `; class ${gone.join(', ')} vanishes (predicted ${gone.map((c) => `${a.proportions[c].toFixed(3)} -> ${b.proportions[c].toFixed(4)}`).join(', ')})` : '';
  return { take, text: `entropy after AdaBN ${b.entropy.toFixed(4)} ${b.entropy <= a.entropy ? '<=' : '>'} ${a.entropy.toFixed(4)}${vanished}` };
}

/**
 * The search and its guard on top of the adapter's pick `candidates[chosen]` (whose `score` is its objective when
 * `pickObjective` is null, else `pickObjective` is). Returns the refined permutation candidates, the new pick's index
 * (into `candidates` followed by them) and the note.
 */
export function guardedBandPermutation(
  unet: UNet,
  target: UnlabeledSlices,
  t: Targets,
  o: Resolved,
  p: ResolvedBandPermutations,
  pick: { curve: IntensityCurve; objective: number; index: number; count: number },
  adapterBasis: Float32Array,
  rng: Rng,
): { candidates: AdapterCandidate[]; chosen: number; note: string } {
  const { bands, candidates: refined } = bandPermutationCandidates(unet, target, t, o, p, rng);
  // The best order's curve, evaluated at the adapter's own knots and refined there: the pick keeps the adapter's form
  // (K quantile knots), which also places more knots where the target has more pixels.
  const knots = pick.curve.knots;
  const moved = knots.map((x) => evalCurve(refined[0].curve, x));
  const final = makeCurve(knots, refine(unet, target, adapterBasis, moved, t, { ...o, steps: p.finalSteps }, rng));
  const best = { ...refined[0], curve: final, score: scoreObjective(unet, target, adapterBasis, knots.length, final, t, o) };
  const candidates = [best, ...refined.slice(1)];
  const priors = t.prior ? Array.from(t.prior.dataSync()) : null;
  let chosen = pick.index;
  let verdict: string;
  if (p.selection === 'restart-agreement') {
    // Every candidate (the pick first, so that it wins ties) scored by how often its segmentation comes back.
    const pool = [pick.curve, ...candidates.map((c) => c.curve)];
    const scores = pool.map((curve) => restartAgreement(unet, target, t, o, curve, p.agreement, rng).agreement);
    const top = scores.reduce((b, x, i) => (x > scores[b] ? i : b), 0);
    const names = ['pick', ...candidates.map((c) => `[${c.permutation.join(',')}]`)];
    verdict = `restart agreement (${p.agreement.restarts} re-fits, sigma ${p.agreement.sigma}, ${p.agreement.steps} steps) ${scores.map((x, i) => `${names[i]} ${x.toFixed(3)}`).join(', ')}`;
    if (top > 0) {
      // Stability alone also rewards a consistently wrong segmentation (a stable class swap: mricron inversion 102
      // took an order with Dice 0.002 at agreement 0.857 > the negation's 0.707, tuning seeds, session 9), so the most
      // stable order must also pass the band search's entropy guard against the pick.
      const guard = entropyGuard(unet, target, o, pick.curve, pool[top], priors);
      verdict += `; most stable ${names[top]}: ${guard.text}`;
      if (guard.take) chosen = pick.count + top - 1;
    }
  } else if (best.score >= pick.objective) verdict = `objective ${best.score.toFixed(4)} not below the pick's ${pick.objective.toFixed(4)}`;
  else {
    const guard = entropyGuard(unet, target, o, pick.curve, best.curve, priors);
    verdict = `objective ${best.score.toFixed(4)} < ${pick.objective.toFixed(4)}, ${guard.text}`;
    if (guard.take) chosen = pick.count;
  }
  const levels = bands.means.map((m) => m.toFixed(2)).join(' < ');
  const tried = refined.map((c) => `[${c.permutation.join(',')}] ${c.screened.toFixed(4)} -> ${c.score.toFixed(4)}`).join(', ');
  const note = `; band permutations (M=${p.bands}, band means ${levels}; screened after ${p.screenSteps} steps, best ${p.refine} to ${p.steps}: ${tried}; best on the adapter's knots +${p.finalSteps} steps ${best.score.toFixed(4)}): ${chosen === pick.index ? 'kept the pick' : `took [${candidates[chosen - pick.count].permutation.join(',')}]`}, ${verdict}`;
  return { candidates: candidates.map((c) => ({ start: 'band-permutation', search: 'bands', score: c.score, curve: c.curve, permutation: c.permutation })), chosen, note };
}
