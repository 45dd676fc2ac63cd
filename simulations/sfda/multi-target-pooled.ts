/**
 * The pooled parts of federated multi-target adaptation for sites with the same kind of scanner (multi-target.ts,
 * `adapt.share.inputCurve` / `adapt.share.bnMoments`), each a sequence of SecAgg+ rounds (multi-target-round.ts's
 * `secureSum`: signed keys, pairwise and self masks, Shamir-shared seeds; Bonawitz et al., CCS 2017; Bell et al.,
 * CCS 2020), so that the coordinator learns sums only:
 *   1. the input curve fitted on all sites' slices (site-agent/adapt/joint-input-curve.ts: FedSGD on the mean of the
 *      sites' source-BN-statistics objectives, the curve in each site's own quantile space; restarts averaged, the pick
 *      by the summed objective), then every site's label-free choice between the pooled curve and its own;
 *   2. target BN moments (site-agent/adapt/joint-bn-moments.ts: pooled AdaBN, Li et al. 2016) summed over the sites that
 *      took the pooled curve (the others send zeros and keep their own statistics: FedBN, Li et al., ICLR 2021);
 *      optionally a site keeps them only when its mean prediction entropy did not rise by more than a tolerance.
 */
import {
  adamState,
  adamStep,
  bnMomentsFromVectors,
  bnMomentVectors,
  JointCurveSite,
  jointCurveOptions,
  preferPooled,
  choosePooledBn,
  mixBnMomentSums,
  setBnFromMomentSums,
  targetBnMomentSums,
  type InputAdapterOptions,
  type IntensityCurve,
  type JointTargetSite,
  type SourceStats,
  type UnlabeledSlices,
} from '../../site-agent/adapt/index.ts';
import { packVectors, unpackVectors } from '../../protocol/secagg/index.ts';
import type { UNet } from '../../site-agent/model/index.ts';
import { MultiTargetError } from './multi-target-config.ts';
import { secureSum, type SecureRoundConfig, type SecureRoundHooks } from './multi-target-round.ts';

export interface PooledCurveResult {
  /** The curve values the sum picked (in every site's own quantile space). */
  readonly values: number[];
  /** Every site's curve after its choice (the pooled values on its knots, or its own curve). */
  readonly curves: IntensityCurve[];
  /** Which sites took the pooled curve. */
  readonly joined: boolean[];
  /** Per site: its own objective under its own curve and under the pooled one. */
  readonly own: number[];
  readonly pooled: number[];
  readonly secureRounds: number;
}

/** Scales and checks a site's vector against the public clip range (a silently clamped sum would be wrong). */
export function inClipRange(v: Float32Array, clip: number, what: string): Float32Array {
  for (const x of v) if (!(Math.abs(x) <= clip)) throw new MultiTargetError(`${what}: a value (${x}) is outside the secure-aggregation clip range ±${clip}`, 'OUTSIDE_CLIP_RANGE');
  return v;
}

/**
 * Fits the pooled curve and lets every site choose. `own` are the sites' own curves (fitted alone on the same model)
 * and `unet` the source model every site holds (left as it is).
 */
export async function securePooledCurve(
  c: SecureRoundConfig,
  unet: UNet,
  targets: readonly UnlabeledSlices[],
  stats: SourceStats | null,
  adapter: InputAdapterOptions,
  own: readonly (IntensityCurve | null)[],
  opts: { batchSize: number; seed: number; tolerance: number; refine?: number },
  hooks: SecureRoundHooks,
): Promise<PooledCurveResult> {
  const o = jointCurveOptions({ ...adapter, batchSize: opts.batchSize, seed: opts.seed });
  const sites = targets.map((t, i) => new JointCurveSite(unet, t, stats, adapter, { ...o, seed: opts.seed * 31 + i }));
  let rounds = 0;
  try {
    const w = sites.map((s) => s.numExamples / c.maxExamples);
    const sum = async (vectors: Float32Array[], round: number): Promise<Float32Array> => {
      rounds++;
      const s = await secureSum(c, vectors.map((v, i) => inClipRange(v, c.clip, `site ${c.ids[i]}`)), 'statistics', hooks);
      hooks.onSiteInputs?.('statistics', round, vectors, s);
      return s;
    };
    // Restarts: every site's own starts (same shared seed), weighted by its slices, summed: [w_i · v_ij ..., w_i].
    const starts = sites.map((s) => s.starts(opts.seed));
    const nStarts = starts[0].length;
    const k = o.knots;
    const startSum = await sum(sites.map((_, i) => Float32Array.from([...starts[i].flat().map((x) => x * w[i]), w[i]])), 0);
    const total = startSum[nStarts * k];
    const candidates: { values: number[]; score: number }[] = [];
    for (let j = 0; j < nStarts; j++) {
      let values = Array.from(startSum.subarray(j * k, (j + 1) * k), (x) => x / total);
      const adam = adamState(k);
      for (let step = 0; step < o.steps; step++) {
        // Each site's n_i ∇L_i, weighted by 1 / maxExamples and clipped in L2 norm to the clip range (Adam is
        // nearly invariant to the scale, and an unclipped gradient of a bad restart could leave the range).
        const contributions = sites.map((s, i) => {
          const g = s.gradient(values).grad.map((x) => x / c.maxExamples);
          const norm = Math.hypot(...g);
          const f = norm > c.clip ? c.clip / norm : 1;
          return Float32Array.from([...Array.from(g, (x) => x * f), w[i]]);
        });
        const g = await sum(contributions, step + 1);
        const n = g[k];
        values = adamStep(values, Array.from(g.subarray(0, k), (x) => x / n), adam, o.lr);
      }
      const scored = await sum(sites.map((s, i) => Float32Array.of(w[i] * s.score(values), w[i])), o.steps + 1);
      candidates.push({ values, score: scored[0] / scored[1] });
    }
    const best = candidates.reduce((b, x) => (x.score < b.score ? x : b), candidates[0]);
    // Every site's choice, by its own objective: the pooled curve on its knots (refined locally from there with
    // `refine` steps: a warm start) vs its own curve.
    const local = sites.map((s) => (opts.refine ? s.refine(best.values, opts.refine) : best.values));
    const ownScores = sites.map((s, i) => (own[i] ? s.score(rebased(own[i]!, s)) : Infinity));
    const pooledScores = sites.map((s, i) => s.score(local[i]));
    const joined = sites.map((_, i) => preferPooled(ownScores[i], pooledScores[i], opts.tolerance));
    const curves = sites.map((s, i) => (joined[i] || !own[i] ? s.curve(local[i]) : own[i]!));
    return { values: best.values, curves, joined, own: ownScores, pooled: pooledScores, secureRounds: rounds };
  } finally {
    for (const s of sites) s.dispose();
  }
}

/** The site's own curve values (its knots are the same quantiles of the same images: the values carry over). */
function rebased(curve: IntensityCurve, s: JointCurveSite): number[] {
  if (curve.knots.length !== s.knots.length || curve.knots.some((x, i) => Math.abs(x - s.knots[i]) > 1e-6)) throw new MultiTargetError(`own curve and joint site disagree on the knots (${curve.knots.length} vs ${s.knots.length})`, 'KNOT_MISMATCH');
  return [...curve.values];
}

/**
 * Pooled AdaBN over the sites in `joined` (the others contribute zeros and keep their own statistics): each joined
 * site's adapted model gets the pooled target BN statistics.
 */
export async function securePooledBn(
  c: SecureRoundConfig,
  joint: readonly JointTargetSite[],
  joined: readonly boolean[],
  round: number,
  hooks: SecureRoundHooks,
  entropyTolerance: number | null,
  ownWeight = 0,
): Promise<({ own: number | null; pooled: number | null; keep: boolean } | null)[]> {
  const scale = 1 / c.maxExamples;
  const sums = joint.map((j) => targetBnMomentSums(j.unet, j.seen, j.opts.batchSize));
  const packed = sums.map((s, i) => {
    const v = packVectors(bnMomentVectors(s, scale));
    if (!joined[i]) v.vector.fill(0);
    return v;
  });
  const vectors = packed.map((p, i) => inClipRange(p.vector, c.clip, `site ${c.ids[i]} BN moments`));
  const sum = await secureSum(c, vectors, 'statistics', hooks);
  hooks.onSiteInputs?.('statistics', round, vectors, sum);
  if (!joined.some((x) => x)) return joint.map(() => null);
  const pooled = bnMomentsFromVectors(unpackVectors(sum, packed[0].layout), [...sums[0].layers.keys()], scale);
  // Each joined site takes the pooled statistics (with `ownWeight` > 0: the mixture of its own target and the pooled
  // one, computed at the site from its own sums; then as its method uses target statistics: `calibrateBn`), or, with an entropy tolerance, checks them first (its model holds its
  // own statistics after finish()): entropy under pooled vs own.
  return joint.map((j, i) => {
    if (!joined[i]) return null;
    const mine = j.calibrateBn(ownWeight > 0 ? mixBnMomentSums(sums[i], pooled, ownWeight) : pooled);
    if (entropyTolerance === null) {
      setBnFromMomentSums(j.unet, mine);
      return { own: null, pooled: null, keep: true };
    }
    return choosePooledBn(j.unet, j.seen, mine, entropyTolerance, j.opts.batchSize);
  });
}
