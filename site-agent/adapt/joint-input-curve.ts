/**
 * One site's side of a pooled input-curve fit across several new hospitals with the same kind of scanner. Alone, a
 * site fits its curve g_v (input-adapter.ts) by minimising its objective L_i(v) (the source-BN-statistics KL of
 * input-adapter.ts's file comment: DeepInversion, Yin et al., CVPR 2020, eq. 4, as FSM's source description, Yang et
 * al., MedIA 2022, sec. 3.1) on its own few target slices, and picks among restarts by the same L_i: both the fit and
 * the pick rest on one case. Jointly, the sites minimise the slice-weighted mean
 *   L̄(v) = Σ_i n_i L_i(v) / Σ_i n_i
 * with the curve written in each site's OWN quantile space: the knots are the site's own target quantiles q_ik and
 * g_v(q_ik) = v_k, so one vector v means "map my k-th quantile to v_k" at every site (a per-site gain, offset or mild
 * gamma of the same scanner model is absorbed by the knots). The fit is FedSGD (McMahan et al., AISTATS 2017, sec. 2:
 * one gradient per site and round, averaged): every step, each site sends n_i ∇L_i(v) on one batch of its slices;
 * the secure sum (Bonawitz et al., CCS 2017; Bell et al., CCS 2020) gives ∇L̄, and the same Adam update (Kingma & Ba,
 * ICLR 2015, Alg. 1) runs on the sum. The restarts are the sites' own starts (identity, negation, random curves from
 * the same seed), averaged by a secure sum; the pick is argmin over restarts of L̄, from a secure sum of the n_i L_i.
 * What leaves a site is therefore gradients and objective values, masked; the coordinator learns sums only.
 *
 * Whether a site then uses the pooled curve is its own label-free decision (`preferPooled`).
 */
import * as tf from '@tensorflow/tfjs-core';
import type { UNet } from '../model/index.ts';
import { Rng } from '../../protocol/common/index.ts';
import { AdaptError } from './adapt-error.ts';
import { batchInput, disposeTargets, objective, scoreObjective, sourceTargets, type Targets } from './adapter-objective.ts';
import { epochBatches } from './batching.ts';
import { fitInputAdapter, type InputAdapterOptions } from './input-adapter.ts';
import { basisMatrix, makeCurve, quantileKnots, type IntensityCurve } from './intensity-curve.ts';
import type { SourceStats } from './source-stats.ts';
import type { UnlabeledSlices } from './unlabeled-slices.ts';
import { validateUnlabeled } from './unlabeled-slices.ts';

/** The resolved options of a joint curve fit (the site's input-adapter options, same defaults). */
export interface JointCurveOptions {
  readonly knots: number;
  readonly steps: number;
  readonly lr: number;
  readonly firstLayer: number;
  readonly layers: number;
  readonly entropyWeight: number;
  readonly priorWeight: number;
  readonly batchSize: number;
  readonly seed: number;
}

export function jointCurveOptions(o: InputAdapterOptions): JointCurveOptions {
  if (o.selection !== undefined && o.selection !== 'objective') throw new AdaptError('BAD_OPTION', `a pooled curve fit selects by the objective, got selection '${o.selection}'`);
  return {
    knots: o.knots ?? 8,
    steps: o.steps ?? 40,
    lr: o.lr ?? 0.05,
    firstLayer: o.firstLayer ?? 2,
    layers: o.layers ?? 1000,
    entropyWeight: o.entropyWeight ?? 0,
    priorWeight: o.priorWeight ?? 0,
    batchSize: o.batchSize ?? 8,
    seed: o.seed ?? 0,
  };
}

export class JointCurveSite {
  readonly knots: number[];
  private readonly basis: Float32Array;
  private readonly t: Targets;
  private readonly rng: Rng;
  private disposed = false;

  constructor(
    private readonly unet: UNet,
    private readonly target: UnlabeledSlices,
    private readonly stats: SourceStats | null,
    private readonly adapter: InputAdapterOptions,
    readonly o: JointCurveOptions,
  ) {
    validateUnlabeled(target);
    if (target.channels !== 1) throw new AdaptError('BAD_SHAPE', `the input adapter needs 1-channel images, got ${target.channels}`);
    this.knots = quantileKnots(target.images, o.knots);
    this.basis = basisMatrix(this.knots, target.images);
    this.t = sourceTargets(unet, stats, o.firstLayer, o.layers);
    // The batch order of the FedSGD steps is the site's own (a site-specific seed is fine: only the sum is used).
    this.rng = new Rng(o.seed + 0x10c41);
  }

  get numExamples(): number {
    return this.target.n;
  }

  /**
   * The site's restarts in its own quantile space: exactly the starts its own fit would refine (identity, negation,
   * random curves), read off a zero-step fit with the `sharedSeed` every site uses, so that restart j is the same
   * shape everywhere.
   */
  starts(sharedSeed: number): number[][] {
    const r = fitInputAdapter(this.unet, this.target, this.stats, { ...this.adapter, steps: 0, wideSearch: undefined, denoise: false, selection: 'objective', seed: sharedSeed, batchSize: this.o.batchSize });
    return r.candidates.map((c) => [...c.curve.values]);
  }

  /** n_i ∇L_i(v) on one batch of the site's slices (the FedSGD contribution) and n_i L_i(v) on it. */
  gradient(values: readonly number[]): { loss: number; grad: Float64Array } {
    this.assertLive();
    const idx = epochBatches(this.target.n, this.o.batchSize, this.rng)[0];
    const v = tf.tensor1d(values as number[]);
    try {
      const { value, grads } = tf.tidy(() => {
        const f = (x: tf.Tensor): tf.Scalar => objective(this.unet, batchInput(this.basis, this.target, idx, this.knots.length, x), this.t, this.o);
        const g = tf.valueAndGrad(f)(v);
        return { value: g.value, grads: g.grad };
      });
      const loss = value.dataSync()[0];
      const grad = Float64Array.from(grads.dataSync(), (x) => x * this.target.n);
      value.dispose();
      grads.dispose();
      return { loss: loss * this.target.n, grad };
    } finally {
      v.dispose();
    }
  }

  /**
   * The site's own refinement of a curve: `steps` local Adam steps (the same update as the pooled fit, on the site's own
   * gradient only) from `values`. The pooled curve is a warm start: the refined curve stays near what all sites agreed
   * on and fits this site's objective at least as well as the start where the steps descend.
   */
  refine(values: readonly number[], steps: number): number[] {
    if (!(Number.isInteger(steps) && steps >= 0)) throw new AdaptError('BAD_OPTION', `refine steps must be an integer >= 0, got ${steps}`);
    let v = [...values];
    const adam = adamState(v.length);
    for (let step = 0; step < steps; step++) v = adamStep(v, this.gradient(v).grad, adam, this.o.lr);
    return v;
  }

  /** L_i(v) over the whole target (what the site scores a curve with, alone or jointly). */
  score(values: readonly number[]): number {
    this.assertLive();
    return scoreObjective(this.unet, this.target, this.basis, this.knots.length, this.curve(values), this.t, this.o);
  }

  /** The curve v on the site's own knots. */
  curve(values: readonly number[]): IntensityCurve {
    if (values.length !== this.knots.length) throw new AdaptError('BAD_SHAPE', `a curve on ${this.knots.length} knots needs ${this.knots.length} values, got ${values.length}`);
    return makeCurve(this.knots, values);
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    disposeTargets(this.t);
  }

  private assertLive(): void {
    if (this.disposed) throw new AdaptError('BAD_OPTION', 'this joint curve site was disposed');
  }
}

/** Adam's state on a vector (Kingma & Ba, ICLR 2015, Alg. 1), in float64, identical wherever the same sums arrive. */
export interface AdamState {
  readonly m: Float64Array;
  readonly v: Float64Array;
  t: number;
}

export function adamState(k: number): AdamState {
  return { m: new Float64Array(k), v: new Float64Array(k), t: 0 };
}

/** One Adam step on `values` with gradient `g` (β1 0.9, β2 0.999, ε 1e-7: tfjs's tf.train.adam defaults). */
export function adamStep(values: number[], g: ArrayLike<number>, s: AdamState, lr: number): number[] {
  const b1 = 0.9;
  const b2 = 0.999;
  s.t++;
  return values.map((x, k) => {
    s.m[k] = b1 * s.m[k] + (1 - b1) * g[k];
    s.v[k] = b2 * s.v[k] + (1 - b2) * g[k] * g[k];
    const mh = s.m[k] / (1 - b1 ** s.t);
    const vh = s.v[k] / (1 - b2 ** s.t);
    return x - (lr * mh) / (Math.sqrt(vh) + 1e-7);
  });
}

/**
 * A site's label-free choice between a pooled result and its own: its own objective L_i under each (lower is better),
 * the pooled one taken unless it is worse by more than `tolerance` (relative): L_i(pooled) <= (1 + tolerance) L_i(own).
 * The own result minimised L_i on the site's data, so the pooled one is almost never lower; the tolerance is what a
 * site gives up on its own noisy estimate for an estimate from more data, and a pooled result fitted to other
 * scanners' data shows as a much larger L_i.
 */
export function preferPooled(own: number, pooled: number, tolerance: number): boolean {
  if (!(tolerance >= 0)) throw new AdaptError('BAD_OPTION', `tolerance must be >= 0, got ${tolerance}`);
  if (!Number.isFinite(pooled)) return false;
  if (!Number.isFinite(own)) return true;
  return pooled <= own + tolerance * Math.abs(own);
}
