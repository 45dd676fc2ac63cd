/**
 * One new (unlabelled) hospital in federated source-free adaptation across several target sites. Every site starts
 * from the same federated source model, fits its own input curve (input-adapter.ts; each scanner has its own
 * intensities) and runs the mean-teacher adaptation (mean-teacher.ts) in rounds; per round it contributes only sums
 * that a secure aggregation can add up:
 * - class-prototype sufficient statistics of its certain teacher pixels (DPL eq. 3: Σ p̄ and Σ p̄ z per class), so
 *   every site denoises its pseudo-labels against prototypes estimated on all sites' pixels;
 * - kept pseudo-label pixels per class (class-ratio estimate), so the class balance (CBST/CBMT weights) comes from
 *   all sites' pseudo-labels rather than one site's few cases;
 * - and, through the strategy's fit aggregation, its student's non-BN weights (FedBN, Li et al. ICLR 2021: BN
 *   parameters and statistics stay local, since the scanners differ), weighted by its number of target slices.
 * Sites multiply the statistics by a public `scale` (1 / a public bound on target pixels per site) so that they fit
 * the secure-aggregation clipping range; the coordinator sees the unmasked sum only.
 */
import type { WeightSet } from '../../protocol/index.ts';
import type { UNet } from '../model/index.ts';
import { AdaptError } from './adapt-error.ts';
import { addPrototypeSums, denoise, type PrototypeSums, type TeacherPass } from './denoised-pseudo-labels.ts';
import { fitInputAdapter, type InputAdapterOptions, type InputAdapterResult } from './input-adapter.ts';
import { applyCurve, type IntensityCurve } from './intensity-curve.ts';
import { frequencyWeights, keptClassCounts, MeanTeacherSession, type MeanTeacherOptions } from './mean-teacher.ts';
import type { SourceStats } from './source-stats.ts';
import type { UnlabeledSlices } from './unlabeled-slices.ts';

/** The statistics request name of a joint-adaptation round (`LocalTrainer.statistics`). */
export const JOINT_ADAPT_REQUEST = 'joint-target-adaptation';

export interface JointSiteOptions extends MeanTeacherOptions {
  /** The site's input adapter; off when absent. */
  readonly inputAdapter?: InputAdapterOptions;
  /** 'pooled' (default): prototypes and class counts from the secure sum; 'local': the site's own (adapting alone). */
  readonly share?: 'pooled' | 'local';
}

/** Named vectors of one site's round statistics, every value times `scale`. */
export function jointStatisticsVectors(protos: PrototypeSums, kept: Float64Array, scale: number): Record<string, Float32Array> {
  if (!(scale > 0 && Number.isFinite(scale))) throw new AdaptError('BAD_OPTION', `statistics scale must be > 0, got ${scale}`);
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

/** The pooled prototype sums and class counts from summed vectors (unscaled). */
export function jointStatisticsFromVectors(sums: Record<string, Float32Array>, numClasses: number, dim: number, scale: number): { protos: PrototypeSums; kept: Float64Array } {
  const get = (name: string, length: number): Float32Array => {
    const v = sums[name];
    if (!v || v.length !== length) throw new AdaptError('BAD_SHAPE', `joint statistics: "${name}" is missing or not ${length} values long`);
    return v;
  };
  const weight = new Float64Array(numClasses);
  const sum = new Float64Array(numClasses * dim);
  const kept = new Float64Array(numClasses);
  for (let c = 0; c < numClasses; c++) {
    // Quantization can leave a tiny negative for an empty class: clamp to 0 (no prototype, no pixels).
    weight[c] = Math.max(0, get(`proto/${c}/weight`, 1)[0] / scale);
    get(`proto/${c}/sum`, dim).forEach((v, j) => (sum[c * dim + j] = v / scale));
    kept[c] = Math.max(0, get(`kept/${c}`, 1)[0] / scale);
  }
  return { protos: { weight, sum, dim }, kept };
}

export class JointTargetSite {
  readonly session: MeanTeacherSession;
  readonly adapter: InputAdapterResult | null;
  /** What the student sees (the target through the site's curve). */
  readonly seen: UnlabeledSlices;
  private pass: TeacherPass | null = null;
  private readonly share: 'pooled' | 'local';
  keptFraction = 0;

  constructor(
    readonly unet: UNet,
    target: UnlabeledSlices,
    stats: SourceStats | null,
    readonly opts: JointSiteOptions,
  ) {
    this.share = opts.share ?? 'pooled';
    this.adapter = opts.inputAdapter ? fitInputAdapter(unet, target, stats, { batchSize: opts.batchSize, seed: opts.seed, ...opts.inputAdapter }) : null;
    this.seen = this.adapter ? applyCurve(this.adapter.curve, target) : target;
    this.session = new MeanTeacherSession(unet, this.seen, opts);
  }

  get numExamples(): number {
    return this.seen.n;
  }

  /** Step 1 of a round: the teacher's pass and this site's contribution to the statistics sum. */
  statistics(scale: number): Record<string, Float32Array> {
    this.pass = this.session.teacherPass();
    const protos = this.session.localPrototypes(this.pass);
    const local = denoise(this.pass, protos, this.opts.prototypeFilter ?? true);
    return jointStatisticsVectors(protos, keptClassCounts(local, this.pass.numClasses), scale);
  }

  /** Step 2: denoise with the pooled (or, adapting alone, the local) statistics and train one local epoch. */
  train(pooled: { protos: PrototypeSums; kept: Float64Array } | null, totalSteps: number): void {
    if (this.pass === null) throw new AdaptError('BAD_OPTION', 'train() before statistics() in this round');
    const tp = this.pass;
    const protos = this.share === 'pooled' && pooled ? pooled.protos : this.session.localPrototypes(tp);
    const d = denoise(tp, protos, this.opts.prototypeFilter ?? true);
    const counts = this.share === 'pooled' && pooled ? pooled.kept : keptClassCounts(d, tp.numClasses);
    this.keptFraction = d.keptFraction;
    this.session.trainEpoch(d, frequencyWeights(counts), totalSteps);
    this.pass = null;
  }

  /** Loads the aggregated non-BN weights into the student (its BN stays local). */
  receive(global: WeightSet, isBatchNorm: (name: string) => boolean): void {
    this.unet.setWeights(global.filter((t) => !isBatchNorm(t.name)), { partial: true });
  }

  /** Makes the student the adapted model (the teacher, target BN statistics); returns the curve its inputs need, or null. */
  finish(): IntensityCurve | null {
    this.session.finish();
    return this.adapter ? this.adapter.curve : null;
  }

  /** Several sites' local sums added (what the masked sum computes), for tests and the clear-text check. */
  static addLocal(list: readonly { protos: PrototypeSums; kept: Float64Array }[]): { protos: PrototypeSums; kept: Float64Array } {
    const kept = new Float64Array(list[0].kept.length);
    for (const l of list) l.kept.forEach((v, i) => (kept[i] += v));
    return { protos: addPrototypeSums(list.map((l) => l.protos)), kept };
  }
}

