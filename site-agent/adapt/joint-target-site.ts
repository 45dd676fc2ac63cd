/**
 * One new (unlabelled) hospital in federated source-free adaptation across several target sites. Every site starts
 * from the same federated source model, fits its own input curve (input-adapter.ts; each scanner has its own
 * intensities) and adapts in rounds with one of two local methods; per round it contributes only sums that a secure
 * aggregation can add up, and, through the strategy's fit aggregation, its model's non-BN weights (FedBN, Li et al.
 * ICLR 2021: BN parameters and statistics stay local, since the scanners differ), weighted by its target slices.
 * - `mean-teacher` (mean-teacher.ts, DPL/CBMT): class-prototype sufficient statistics of its certain teacher pixels
 *   (DPL eq. 3: Σ p̄ and Σ p̄ z per class), so every site denoises its pseudo-labels against prototypes estimated on
 *   all sites' pixels; and kept pseudo-label pixels per class, so the class balance (CBST/CBMT weights) comes from all
 *   sites' pseudo-labels.
 * - `ratio-entropy` (ratio-entropy-session.ts, Bateson et al. MedIA 2022 eq. 3): its predicted class mass Σ_i p_ic;
 *   summed over sites, the federation's class-ratio estimate, usable as the prior τ (`classPrior: 'pooled'`) instead
 *   of the source package's class frequencies (`'source'`, the default and what a site alone uses).
 * - `adabn` (adabn-session.ts): the site's own target BN statistics, no training and no statistics sum; what it shares
 *   is its BN moments after the rounds (`adapt.share.bnMoments` in multi-target.ts).
 * Sites multiply the statistics by a public `scale` (1 / a public bound on target pixels per site) so that they fit
 * the secure-aggregation clipping range; the coordinator sees the unmasked sum only.
 */
import type { WeightSet } from '../../protocol/index.ts';
import type { UNet } from '../model/index.ts';
import { AdaptError } from './adapt-error.ts';
import { addPrototypeSums, denoise, type PrototypeSums, type TeacherPass } from './denoised-pseudo-labels.ts';
import { fitInputAdapter, type InputAdapterOptions, type InputAdapterResult } from './input-adapter.ts';
import { applyCurve, type IntensityCurve } from './intensity-curve.ts';
import { classWeights, frequencyWeights, keptClassCounts, MeanTeacherSession, type MeanTeacherOptions } from './mean-teacher.ts';
import { normalisedPrior, RatioEntropySession, type RatioEntropySessionOptions } from './ratio-entropy-session.ts';
import { classPriors, type SourceStats } from './source-stats.ts';
import type { UnlabeledSlices } from './unlabeled-slices.ts';
import { AdaBnSession } from './adabn-session.ts';
import type { BnMomentSums } from './joint-bn-moments.ts';

/** The statistics request name of a joint-adaptation round (`LocalTrainer.statistics`). */
export const JOINT_ADAPT_REQUEST = 'joint-target-adaptation';

export type JointMethod = 'mean-teacher' | 'ratio-entropy' | 'adabn';

export interface JointSiteOptions extends MeanTeacherOptions {
  /** The local method. Default 'mean-teacher'. */
  readonly method?: JointMethod;
  /** Options of the ratio-entropy method (lr, priorWeight). */
  readonly ratioEntropy?: Omit<RatioEntropySessionOptions, 'batchSize' | 'seed'>;
  /** ratio-entropy's prior τ: 'source' class frequencies (default) or the 'pooled' target estimate of the round. */
  readonly classPrior?: 'source' | 'pooled';
  /** adabn only: α_s of α-BN, the weight of the source statistics in the site's (adabn-session.ts). Default 0. */
  readonly sourceBnWeight?: number;
  /** The site's input adapter; off when absent. */
  readonly inputAdapter?: InputAdapterOptions;
  /** 'pooled' (default): the statistics from the secure sum; 'local': the site's own (adapting alone). */
  readonly share?: 'pooled' | 'local';
}

/** The pooled (summed, unscaled) statistics of a round; each part null when the method does not send it. */
export interface PooledStatistics {
  readonly protos: PrototypeSums | null;
  readonly kept: Float64Array | null;
  readonly mass: Float64Array | null;
}

/** Named vectors of one site's mean-teacher round statistics, every value times `scale`. */
export function jointStatisticsVectors(protos: PrototypeSums, kept: Float64Array, scale: number): Record<string, Float32Array> {
  checkScale(scale);
  const k = protos.weight.length;
  const d = protos.dim;
  const out: Record<string, Float32Array> = {};
  for (let c = 0; c < k; c++) {
    out[`proto/${c}/weight`] = Float32Array.of(protos.weight[c] * scale);
    out[`proto/${c}/sum`] = Float32Array.from(protos.sum.subarray(c * d, (c + 1) * d), (v) => v * scale);
    out[`kept/${c}`] = Float32Array.of(kept[c] * scale);
  }
  return out;
}

/** Named vectors of one site's ratio-entropy round statistics (predicted class mass), every value times `scale`. */
export function classMassVectors(mass: Float64Array, scale: number): Record<string, Float32Array> {
  checkScale(scale);
  return Object.fromEntries(Array.from(mass, (v, c) => [`mass/${c}`, Float32Array.of(v * scale)]));
}

function checkScale(scale: number): void {
  if (!(scale > 0 && Number.isFinite(scale))) throw new AdaptError('BAD_OPTION', `statistics scale must be > 0, got ${scale}`);
}

/** The pooled statistics from summed vectors (unscaled): whichever of prototypes, kept counts and class mass are there. */
export function jointStatisticsFromVectors(sums: Record<string, Float32Array>, numClasses: number, dim: number, scale: number): PooledStatistics {
  const get = (name: string, length: number): Float32Array => {
    const v = sums[name];
    if (!v || v.length !== length) throw new AdaptError('BAD_SHAPE', `joint statistics: "${name}" is missing or not ${length} values long`);
    return v;
  };
  // Quantization can leave a tiny negative for an empty class: clamp counts to 0 (no prototype, no pixels).
  const counts = (prefix: string): Float64Array | null =>
    `${prefix}/0` in sums ? Float64Array.from({ length: numClasses }, (_, c) => Math.max(0, get(`${prefix}/${c}`, 1)[0] / scale)) : null;
  let protos: PrototypeSums | null = null;
  if ('proto/0/weight' in sums) {
    const weight = Float64Array.from({ length: numClasses }, (_, c) => Math.max(0, get(`proto/${c}/weight`, 1)[0] / scale));
    const sum = new Float64Array(numClasses * dim);
    for (let c = 0; c < numClasses; c++) get(`proto/${c}/sum`, dim).forEach((v, j) => (sum[c * dim + j] = v / scale));
    protos = { weight, sum, dim };
  }
  const out = { protos, kept: counts('kept'), mass: counts('mass') };
  if (!out.protos && !out.kept && !out.mass) throw new AdaptError('BAD_SHAPE', 'joint statistics: no known statistics in the sum');
  return out;
}

/** The site's input adapter as `JointTargetSite` fits it (on the source model, before any adaptation). */
export function fitJointAdapter(unet: UNet, target: UnlabeledSlices, stats: SourceStats | null, opts: JointSiteOptions): InputAdapterResult {
  return fitInputAdapter(unet, target, stats, { batchSize: opts.batchSize, seed: opts.seed, ...(opts.inputAdapter ?? {}) });
}

export class JointTargetSite {
  readonly method: JointMethod;
  readonly session: MeanTeacherSession | RatioEntropySession | AdaBnSession;
  /** The site's input curve (fitted here, or given: the same fit serves several runs on the same source model). */
  readonly curve: IntensityCurve | null;
  /** What the model sees (the target through the site's curve). */
  readonly seen: UnlabeledSlices;
  private pass: TeacherPass | null = null;
  private mass: Float64Array | null = null;
  private readonly share: 'pooled' | 'local';
  private readonly sourcePrior: Float32Array | null;
  keptFraction = 0;

  constructor(
    readonly unet: UNet,
    target: UnlabeledSlices,
    stats: SourceStats | null,
    readonly opts: JointSiteOptions,
    fitted?: IntensityCurve | null,
  ) {
    this.share = opts.share ?? 'pooled';
    this.method = opts.method ?? 'mean-teacher';
    if (this.method !== 'mean-teacher' && this.method !== 'ratio-entropy' && this.method !== 'adabn') throw new AdaptError('BAD_OPTION', `method must be mean-teacher, ratio-entropy or adabn, got ${String(this.method)}`);
    const k = unet.config.numClasses;
    this.sourcePrior = stats ? normalisedPrior(classPriors(stats), k) : null;
    if (this.method === 'ratio-entropy' && this.sourcePrior === null && (opts.classPrior ?? 'source') === 'source') {
      throw new AdaptError('SOURCE_STATS_REQUIRED', 'ratio-entropy with the source prior needs the source statistics package');
    }
    this.curve = fitted !== undefined ? fitted : opts.inputAdapter ? fitJointAdapter(unet, target, stats, opts).curve : null;
    this.seen = this.curve ? applyCurve(this.curve, target) : target;
    this.session =
      this.method === 'mean-teacher'
        ? new MeanTeacherSession(unet, this.seen, opts)
        : this.method === 'adabn'
          ? new AdaBnSession(unet, this.seen, opts.batchSize, opts.sourceBnWeight ?? 0)
          : new RatioEntropySession(unet, this.seen, { ...(opts.ratioEntropy ?? {}), batchSize: opts.batchSize, seed: opts.seed });
  }

  get numExamples(): number {
    return this.seen.n;
  }

  /** The model whose predictions the site would use now (the mean teacher's teacher, or the adapted network). */
  get current(): UNet {
    return this.session instanceof MeanTeacherSession ? this.session.teacher : this.unet;
  }

  /** Step 1 of a round: this site's contribution to the statistics sum (nothing for adabn). */
  statistics(scale: number): Record<string, Float32Array> {
    const s = this.session;
    if (s instanceof AdaBnSession) return {};
    if (s instanceof RatioEntropySession) {
      this.mass = s.classMass();
      return classMassVectors(this.mass, scale);
    }
    this.pass = s.teacherPass();
    const protos = s.localPrototypes(this.pass);
    const local = denoise(this.pass, protos, this.opts.prototypeFilter ?? true);
    return jointStatisticsVectors(protos, keptClassCounts(local, this.pass.numClasses), scale);
  }

  /**
   * Step 2: one local epoch with the pooled (or, adapting alone, the local) statistics. Parts of `pooled` may be null
   * (that part local): an ablation of what the sharing brings. Nothing for adabn.
   */
  train(pooled: PooledStatistics | null, totalSteps: number): void {
    const usePooled = this.share === 'pooled' && pooled !== null;
    const s = this.session;
    if (s instanceof AdaBnSession) return;
    if (s instanceof RatioEntropySession) {
      if (this.mass === null) throw new AdaptError('BAD_OPTION', 'train() before statistics() in this round');
      const k = this.unet.config.numClasses;
      const prior = (this.opts.classPrior ?? 'source') === 'pooled' ? normalisedPrior(usePooled && pooled.mass ? pooled.mass : this.mass, k) : this.sourcePrior!;
      s.trainEpoch(prior);
      this.mass = null;
      return;
    }
    if (this.pass === null) throw new AdaptError('BAD_OPTION', 'train() before statistics() in this round');
    const tp = this.pass;
    const protos = usePooled && pooled.protos ? pooled.protos : s.localPrototypes(tp);
    const d = denoise(tp, protos, this.opts.prototypeFilter ?? true);
    // 'frequency' balancing (the default) from the pooled kept counts when shared; the other modes are per site.
    const balance = this.opts.classBalance ?? 'frequency';
    const weights = balance === 'frequency' ? frequencyWeights(usePooled && pooled.kept ? pooled.kept : keptClassCounts(d, tp.numClasses)) : classWeights(tp, d, balance);
    this.keptFraction = d.keptFraction;
    s.trainEpoch(d, weights, totalSteps);
    this.pass = null;
  }

  /**
   * Loads the aggregated shared weights into the trained model (its BN, and whatever `isLocal` names, stays local).
   * With `personal` = θ > 0 each shared tensor becomes θ · own + (1 - θ) · aggregate (a local-global mixing step:
   * L2GD, Hanzely & Richtárik 2020, Alg. 1), so a site whose target needs a large change of its own keeps part of it.
   */
  receive(global: WeightSet, isLocal: (name: string) => boolean, personal = 0): void {
    if (!(personal >= 0 && personal <= 1)) throw new AdaptError('BAD_OPTION', `personal must be in [0, 1], got ${personal}`);
    const own = personal > 0 ? new Map(this.unet.getWeights().map((t) => [t.name, t.data])) : null;
    const shared = global
      .filter((t) => !isLocal(t.name))
      .map((t) => {
        const mine = own?.get(t.name);
        return mine ? { ...t, data: Float32Array.from(t.data, (g, i) => personal * mine[i] + (1 - personal) * g) } : t;
      });
    this.unet.setWeights(shared, { partial: true });
  }

  /** Target BN moments as the site's method uses them (adabn with `sourceBnWeight`: mixed with the source's). */
  calibrateBn(target: BnMomentSums): BnMomentSums {
    return this.session instanceof AdaBnSession ? this.session.calibrate(target) : target;
  }

  /** Makes `unet` the adapted model (target BN statistics); returns the curve its inputs need, or null. */
  finish(): IntensityCurve | null {
    this.session.finish();
    return this.curve;
  }

  /** Several sites' local sums added (what the masked sum computes), for tests and the clear-text check. */
  static addLocal(list: readonly { protos: PrototypeSums; kept: Float64Array }[]): { protos: PrototypeSums; kept: Float64Array } {
    const kept = new Float64Array(list[0].kept.length);
    for (const l of list) l.kept.forEach((v, i) => (kept[i] += v));
    return { protos: addPrototypeSums(list.map((l) => l.protos)), kept };
  }
}
