/**
 * Mean-teacher adaptation with denoised pseudo-labels.
 * - Teacher/student (Tarvainen & Valpola, "Mean teachers are better role models", NeurIPS 2017, eq. 1): the teacher's
 *   parameters are an exponential moving average of the student's, θ'_t = α θ'_{t-1} + (1 - α) θ_t, after every step.
 * - CBMT (Tang et al., MICCAI 2023, sec. 2.2-2.3; `lloongx/SFDA-CBMT` train_target.py): the teacher sees the weak
 *   (unaugmented) target image, the student a strongly augmented one (strong-augment.ts), the student is trained on
 *   the teacher's hard pseudo-labels, and the loss is class-balanced by the ratio of the classes' mean pseudo-label
 *   losses (their code: negatives weighted by mean-loss(positives) / mean-loss(negatives)); here for K classes,
 *   w_c = mean_c' ℓ_c' / ℓ_c with ℓ_c the teacher's mean -log p̄_c over pixels it labels c (`classBalance: 'mean-loss'`),
 *   or w_c = 1 / (K' f_c) from the kept pseudo-label frequencies f_c (`'frequency'`, CBST's balancing, Zou et al.
 *   ECCV 2018 sec. 4.2), or none.
 * - DPL (Chen et al., MICCAI 2021; denoised-pseudo-labels.ts): the pseudo-labels of each epoch come from N stochastic
 *   teacher passes; only certain pixels whose nearest class prototype agrees are kept (masked CE, DPL eq. 5).
 * - Few-label mode (semi-supervised, the survey's Mean Teacher / UA-MT line: Yu et al., "Uncertainty-aware
 *   self-ensembling model for semi-supervised 3D left atrium segmentation", MICCAI 2019, eq. 1: supervised loss on the
 *   labelled cases + uncertainty-filtered teacher-student consistency on all): with `labelled` slices, every step adds
 *   the supervised CE + soft Dice of a labelled batch to the pseudo-label loss, whose uncertainty filter plays
 *   UA-MT's role.
 * BN: both start from the source model with target statistics (AdaBN); the student trains with batch statistics
 * (running statistics updated, momentum 0.1); the teacher's statistics are re-estimated on the target (AdaBN) before
 * every pseudo-labelling pass. The adapted model is the teacher, with a final AdaBN pass.
 * `MeanTeacherSession` exposes the steps so that several target sites can interleave them with secure sums
 * (federated multi-target adaptation); `adaptMeanTeacher` runs them alone.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { WeightSet } from '../../protocol/index.ts';
import type { SliceDataset } from '../data/index.ts';
import { createUNet, type BatchNormStats, type UNet } from '../model/index.ts';
import { ceDiceLoss } from '../training/index.ts';
import { Rng } from '../../protocol/common/index.ts';
import { adaptAdaBN } from './adabn.ts';
import { AdaptError } from './adapt-error.ts';
import type { AdaptProgress, AdaptReport } from './adapt-report.ts';
import { disposeStats, epochBatches } from './batching.ts';
import { denoise, prototypeSums, teacherPass, type DenoisedLabels, type DplOptions, type PrototypeSums, type TeacherPass } from './denoised-pseudo-labels.ts';
import { strongAugment, type StrongAugmentOptions } from './strong-augment.ts';
import { checkPositive } from './tent.ts';
import type { UnlabeledSlices } from './unlabeled-slices.ts';
import { validateUnlabeled } from './unlabeled-slices.ts';

export type ClassBalance = 'mean-loss' | 'frequency' | 'none';

export interface MeanTeacherOptions extends DplOptions {
  /** Passes over the target set. Default 6. */
  readonly epochs?: number;
  /** Adam learning rate of the student (all parameters). Default 1e-3. */
  readonly lr?: number;
  /** EMA rate α of the teacher per step. Default 0.9 (CBMT's 0.98 is for thousands of steps). */
  readonly ema?: number;
  readonly classBalance?: ClassBalance;
  /** Strong augmentation of the student's view; `false` turns it off. */
  readonly augment?: StrongAugmentOptions | false;
  /** Weight of the supervised loss in few-label mode. Default 1. */
  readonly supervisedWeight?: number;
  readonly seed?: number;
  readonly onProgress?: AdaptProgress;
}

/** Kept pseudo-label pixels per class (the input of the 'frequency' balance; poolable by addition). */
export function keptClassCounts(d: DenoisedLabels, numClasses: number): Float64Array {
  const count = new Float64Array(numClasses);
  for (let i = 0; i < d.labels.length; i++) if (d.mask[i] > 0) count[d.labels[i]]++;
  return count;
}

/** Bounded so that one nearly empty class cannot dominate the loss. */
const clampWeight = (w: number): number => Math.min(5, Math.max(0.2, w));

/** w_c = N / (K' n_c) over the K' classes with n_c > 0 (others 0): CBST-style balancing from class counts. */
export function frequencyWeights(counts: ArrayLike<number>): Float64Array {
  const k = counts.length;
  const w = new Float64Array(k);
  let total = 0;
  let present = 0;
  for (let c = 0; c < k; c++) {
    total += counts[c];
    if (counts[c] > 0) present++;
  }
  for (let c = 0; c < k; c++) w[c] = counts[c] > 0 ? clampWeight(total / (present * counts[c])) : 0;
  return w;
}

/** Per-class weights (see the file comment); classes without pseudo-labels get weight 0. */
export function classWeights(t: TeacherPass, d: DenoisedLabels, mode: ClassBalance): Float64Array {
  const k = t.numClasses;
  if (mode === 'none') return new Float64Array(k).fill(1);
  if (mode === 'frequency') return frequencyWeights(keptClassCounts(d, k));
  // CBMT's mean-loss ratio: w_c = mean_c' l_c' / l_c, l_c = mean -log p_c over the pixels the teacher labels c.
  const loss = new Float64Array(k);
  const count = new Float64Array(k);
  for (let i = 0; i < t.labels.length; i++) {
    const c = t.labels[i];
    loss[c] += -Math.log(Math.max(1e-6, t.probs[i * k + c]));
    count[c]++;
  }
  const present = Array.from({ length: k }, (_, c) => count[c] > 0);
  const mean = loss.reduce((a, v, c) => a + (present[c] ? v / count[c] : 0), 0) / (present.filter(Boolean).length || 1);
  return Float64Array.from({ length: k }, (_, c) => (present[c] ? clampWeight(mean / Math.max(1e-6, loss[c] / count[c])) : 0));
}

function checkOptions(o: MeanTeacherOptions): void {
  checkPositive('epochs', o.epochs ?? 6, true);
  checkPositive('lr', o.lr ?? 1e-3);
  const ema = o.ema ?? 0.9;
  if (!(ema >= 0 && ema < 1)) throw new AdaptError('BAD_OPTION', `ema must be in [0, 1), got ${ema}`);
  const cb = o.classBalance ?? 'frequency';
  if (cb !== 'mean-loss' && cb !== 'frequency' && cb !== 'none') throw new AdaptError('BAD_OPTION', `classBalance must be mean-loss, frequency or none, got ${String(cb)}`);
  if (!((o.supervisedWeight ?? 1) >= 0)) throw new AdaptError('BAD_OPTION', `supervisedWeight must be >= 0, got ${o.supervisedWeight}`);
}

/** One target site's teacher and student, stepped by the caller. */
export class MeanTeacherSession {
  readonly teacher: UNet;
  private readonly optimizer: tf.Optimizer;
  private readonly rng: Rng;
  private readonly labelRng: Rng;
  private readonly ema: number;
  private readonly px: number;
  steps = 0;
  readonly losses: number[] = [];

  constructor(
    readonly student: UNet,
    readonly target: UnlabeledSlices,
    readonly opts: MeanTeacherOptions,
    readonly labelled?: SliceDataset,
  ) {
    validateUnlabeled(target);
    checkOptions(opts);
    if (labelled && (labelled.height !== target.height || labelled.width !== target.width || labelled.numClasses !== student.config.numClasses)) {
      throw new AdaptError('BAD_SHAPE', 'labelled slices must have the target size and the model\'s classes');
    }
    this.ema = opts.ema ?? 0.9;
    this.rng = new Rng(opts.seed ?? 0);
    this.labelRng = this.rng.fork();
    this.px = target.height * target.width;
    adaptAdaBN(student, target, { batchSize: opts.batchSize });
    this.teacher = createUNet(student.config, 0);
    this.teacher.setWeights(student.getWeights());
    this.optimizer = tf.train.adam(opts.lr ?? 1e-3);
  }

  /** The teacher's view of the target (after re-estimating its BN statistics there). */
  teacherPass(): TeacherPass {
    adaptAdaBN(this.teacher, this.target, { batchSize: this.opts.batchSize });
    return teacherPass(this.teacher, this.target, this.opts, this.labelRng);
  }

  localPrototypes(t: TeacherPass): PrototypeSums {
    return prototypeSums(t);
  }

  /** One pass over the target with the given (denoised) pseudo-labels and class weights. */
  trainEpoch(d: DenoisedLabels, weights: Float64Array, total: number): void {
    const bs = this.opts.batchSize ?? 8;
    const k = this.student.config.numClasses;
    const vars = [...this.student.trainable.values()];
    const t = this.target;
    const px = this.px;
    const { labels, mask } = d;
    for (const idx of epochBatches(t.n, bs, this.rng)) {
      const npx = idx.length * px;
      const img = new Float32Array(npx);
      const lab = new Int32Array(npx);
      const wpx = new Float32Array(npx);
      let wsum = 0;
      for (let i = 0; i < idx.length; i++) {
        const from = idx[i] * px;
        const to = i * px;
        img.set(t.images.subarray(from, from + px), to);
        lab.set(labels.subarray(from, from + px), to);
        for (let q = 0; q < px; q++) {
          wpx[to + q] = mask[from + q] * weights[labels[from + q]];
          wsum += wpx[to + q];
        }
      }
      const view = this.opts.augment === false ? img : strongAugment(img, idx.length, t.height, t.width, this.rng, this.opts.augment ?? {});
      const sup = this.labelled ? this.labelledBatch(bs) : null;
      const x = tf.tensor4d(view, [idx.length, t.height, t.width, 1]);
      const y = tf.tensor1d(lab, 'int32');
      const w = tf.tensor1d(wpx);
      let stats: Map<string, BatchNormStats> = new Map();
      const cost = this.optimizer.minimize(
        () => {
          const r = this.student.forward(x, { bn: 'batch' });
          for (const s of r.batchStats.values()) {
            tf.keep(s.mean);
            tf.keep(s.variance);
          }
          stats = r.batchStats;
          // Masked, class-weighted CE on the teacher's pseudo-labels (DPL eq. 5 with CBMT's weights).
          const logp = tf.reshape(tf.logSoftmax(r.logits), [npx, k]);
          const nll = tf.neg(tf.sum(tf.mul(tf.cast(tf.oneHot(y, k), 'float32'), logp), -1));
          let loss: tf.Tensor = wsum > 0 ? tf.div(tf.sum(tf.mul(nll, w)), wsum) : tf.scalar(0);
          if (sup) loss = tf.add(loss, tf.mul(ceDiceLoss(this.student.forward(sup.x, { bn: 'batch', collectStats: false }).logits, sup.y, k), this.opts.supervisedWeight ?? 1));
          return loss as tf.Scalar;
        },
        true,
        vars,
      );
      this.student.updateRunningStats(stats, 0.1);
      disposeStats(stats);
      const loss = cost ? cost.dataSync()[0] : NaN;
      for (const tt of [cost, x, y, w, sup?.x, sup?.y]) tt?.dispose();
      this.losses.push(loss);
      this.steps++;
      this.updateTeacher();
      this.opts.onProgress?.(this.steps, total, loss);
    }
  }

  private labelledBatch(bs: number): { x: tf.Tensor4D; y: tf.Tensor } {
    const l = this.labelled!;
    const idx = epochBatches(l.n, Math.min(bs, l.n), this.rng)[0];
    const img = new Float32Array(idx.length * this.px);
    const lab = new Int32Array(idx.length * this.px);
    idx.forEach((s, i) => {
      img.set(l.images.subarray(s * this.px, (s + 1) * this.px), i * this.px);
      lab.set(l.labels.subarray(s * this.px, (s + 1) * this.px), i * this.px);
    });
    return { x: tf.tensor4d(img, [idx.length, l.height, l.width, 1]), y: tf.tensor3d(lab, [idx.length, l.height, l.width], 'int32') };
  }

  /** θ' <- α θ' + (1 - α) θ over every tensor (BN statistics too; they are re-estimated before use anyway). */
  updateTeacher(): void {
    const a = this.ema;
    const s = new Map(this.student.getWeights().map((t) => [t.name, t.data]));
    const next: WeightSet = this.teacher.getWeights().map((t) => {
      const src = s.get(t.name)!;
      const data = new Float32Array(t.data.length);
      for (let i = 0; i < data.length; i++) data[i] = a * t.data[i] + (1 - a) * src[i];
      return { name: t.name, shape: t.shape, data };
    });
    this.teacher.setWeights(next);
  }

  /** Copies the teacher into the student (the adapted model) with target BN statistics, and frees the teacher. */
  finish(): void {
    this.student.setWeights(this.teacher.getWeights());
    adaptAdaBN(this.student, this.target, { batchSize: this.opts.batchSize });
    this.teacher.dispose();
    this.optimizer.dispose();
  }
}

/**
 * Source-free (or, with `labelled`, few-label) mean-teacher adaptation of `unet` in place.
 * @example
 * adaptMeanTeacher(unet, toUnlabeled(target), { epochs: 6, seed: 1 });
 */
export function adaptMeanTeacher(unet: UNet, target: UnlabeledSlices, opts: MeanTeacherOptions = {}, labelled?: SliceDataset): AdaptReport {
  const session = new MeanTeacherSession(unet, target, opts, labelled);
  const epochs = opts.epochs ?? 6;
  const total = epochs * Math.ceil(target.n / (opts.batchSize ?? 8));
  let last: DenoisedLabels | null = null;
  let weights: Float64Array = new Float64Array(0);
  try {
    for (let e = 0; e < epochs; e++) {
      const tp = session.teacherPass();
      last = denoise(tp, session.localPrototypes(tp), opts.prototypeFilter ?? true);
      weights = classWeights(tp, last, opts.classBalance ?? 'frequency');
      session.trainEpoch(last, weights, total);
    }
  } finally {
    session.finish();
  }
  const notes = [
    `last epoch: ${(100 * (last?.certainFraction ?? 0)).toFixed(1)}% of target pixels certain, ${(100 * (last?.keptFraction ?? 0)).toFixed(1)}% kept after the prototype check; class weights [${Array.from(weights, (w) => w.toFixed(2)).join(', ')}]`,
  ];
  if (labelled) notes.push(`few-label mode: ${labelled.n} labelled target slices`);
  return { method: labelled ? 'mean-teacher+labels' : 'mean-teacher', steps: session.steps, losses: session.losses, notes };
}
