/**
 * The site's local trainer: what a site agent does with the global model in each round.
 * It owns the site's U-Net and data; only weights and aggregate numbers leave it.
 */
import { FIT_METRIC, segmentationMetricRecord } from '../../protocol/contracts/index.ts';
import {
  CLASS_HISTOGRAM_REQUEST,
  classHistogramToVectors,
  SOURCE_STATS_REQUEST,
  sourceStatsToVectors,
  type NamedTensor,
  type WeightSet,
} from '../../protocol/index.ts';
import { computeSourceStatsAsync, dpClassHistogramVectorsAsync, dpSourceStatsVectorsAsync } from '../adapt/index.ts';
import { statisticsDpFromConfig } from '../../protocol/privacy/index.ts';
import type { SliceDataset } from '../data/index.ts';
import { evaluateVolumesAsync } from '../evaluation/index.ts';
import { createUNet, inferUNetConfig, ModelError, type UNet, type UNetConfig } from '../model/index.ts';
import { DpSgdSession, trainLocal, yieldToEventLoop, type TrainConfig, type TrainResult } from '../training/index.ts';

export interface UNetTrainerOptions {
  /** The architecture; when absent it is read from the first global model received (inferUNetConfig). */
  readonly model?: UNetConfig;
  readonly train: SliceDataset;
  readonly val: SliceDataset;
  readonly batchSize: number;
  readonly optimizer: TrainConfig['optimizer'];
  readonly loss: TrainConfig['loss'];
  /** Seeds the local shuffles; the round number is mixed in so rounds differ but runs repeat. */
  readonly seed: number;
  /**
   * FedBN (Li et al., ICLR 2021, section 3): BN affine parameters and running statistics never leave the
   * site; incoming global BN entries are ignored once the site has its own.
   */
  readonly keepBatchNormLocal?: boolean;
  /** Called after every local step (progress reporting). */
  readonly onStep?: (round: number, step: number, loss: number) => void;
  /**
   * Sample-level DP-SGD for every fit (site-agent/training/dp-sgd-session.ts; needs the GroupNorm U-Net). Its
   * accounting rides along the fit metrics (DP_SGD_METRIC) and so reaches the site's audit log.
   */
  readonly dpSgd?: DpSgdSession;
  /**
   * Source-side domain randomisation: each fit trains on `augment(train, round)`, a fresh augmented copy of the
   * training split (labels unchanged), so the federated model sees many scanners' contrasts without any image
   * leaving a site. Statistics rounds (source-stats, class histogram) and evaluation keep the plain split: the
   * source statistics package must describe the real source domain.
   */
  readonly augment?: (train: SliceDataset, round: number) => SliceDataset;
}

export interface FitRequest {
  readonly round: number;
  readonly localEpochs: number;
  readonly lr: number;
  readonly proximalMu?: number;
  /** Set by the FedBN strategy: keep BN local for this and later rounds. */
  readonly keepLocalBatchNorm?: boolean;
}

export interface FitOutcome {
  readonly weights: WeightSet;
  readonly numExamples: number;
  readonly metrics: Record<string, number>;
}

export interface EvaluateOutcome {
  readonly numExamples: number;
  readonly metrics: Record<string, number>;
}

/**
 * Labelled pixels per class of `labels`, giving the event loop a turn every 2^20 pixels (a site agent answers
 * heartbeats during the pass; the passes over the model yield per batch).
 */
async function classPixels(labels: Uint8Array, numClasses: number): Promise<number[]> {
  const pixels = new Array<number>(numClasses).fill(0);
  const stride = 1 << 20;
  for (let s = 0; s < labels.length; s += stride) {
    const end = Math.min(labels.length, s + stride);
    for (let i = s; i < end; i++) pixels[labels[i]]++;
    await yieldToEventLoop();
  }
  return pixels;
}

/**
 * A volume evaluation as the wire's metric record (names: protocol/contracts/metric-names.ts). The pass yields to
 * the event loop per batch and per volume, so the site's heartbeat is answered while it runs.
 */
async function evaluationMetrics(unet: UNet, val: SliceDataset): Promise<Record<string, number>> {
  const ev = await evaluateVolumesAsync(unet, val);
  return segmentationMetricRecord({
    dice: ev.mean.dice.mean,
    iou: ev.mean.iou.mean,
    hd95: ev.mean.hd95.mean,
    assd: ev.mean.assd.mean,
    perClass: ev.perClass.map((m) => ({ dice: m.dice.mean, hd95: m.hd95.mean })),
    infiniteDistances: ev.infiniteCount,
    volumes: ev.cases.length,
  });
}

export class UNetTrainer {
  private model: UNet | undefined;
  private hasLocalBatchNorm = false;

  /** The site's U-Net (created from the options, or from the first global model). */
  get unet(): UNet {
    if (!this.model) throw new ModelError('INVALID_CONFIG', 'the trainer has no model yet: it is created from the first global model');
    return this.model;
  }

  constructor(private readonly opts: UNetTrainerOptions) {
    // The initial weights are overwritten by the first global model; the seed only fixes shapes' init.
    if (opts.model) this.model = createUNet(opts.model, opts.seed);
    this.keepBatchNormLocal = opts.keepBatchNormLocal === true;
  }

  private isBatchNorm(name: string): boolean {
    const kind = this.unet.parameterKind(name);
    return kind === 'bn-affine' || kind === 'bn-stat';
  }

  private keepBatchNormLocal: boolean;

  private load(global: WeightSet): void {
    this.model ??= createUNet(inferUNetConfig(global), this.opts.seed);
    if (this.keepBatchNormLocal && this.hasLocalBatchNorm) {
      this.unet.setWeights(
        global.filter((t) => !this.isBatchNorm(t.name)),
        { partial: true },
      );
    } else {
      this.unet.setWeights(global);
    }
  }

  /** Loads the global model, trains E local epochs, returns the update (BN kept back under FedBN). */
  async fit(global: WeightSet, req: FitRequest): Promise<FitOutcome> {
    if (req.keepLocalBatchNorm === true) this.keepBatchNormLocal = true;
    this.load(global);
    const common = {
      epochs: Math.max(1, req.localEpochs),
      optimizer: this.opts.optimizer,
      lr: req.lr,
      loss: this.opts.loss,
      ...(req.proximalMu ? { proximalMu: req.proximalMu, globalWeights: global } : {}),
      onStep: (step: number, loss: number) => this.opts.onStep?.(req.round, step, loss),
    };
    let result: TrainResult;
    let privacy: Record<string, number> = {};
    // An augmented copy is still one example per training slice, so DP-SGD's privacy unit is unchanged.
    const train = this.opts.augment ? this.opts.augment(this.opts.train, req.round) : this.opts.train;
    if (this.opts.dpSgd) {
      const r = await this.opts.dpSgd.train(this.unet, train, common);
      result = r;
      privacy = r.metrics;
    } else {
      result = await trainLocal(this.unet, train, { ...common, batchSize: this.opts.batchSize, seed: this.opts.seed * 1000 + req.round });
    }
    this.hasLocalBatchNorm = true;
    let weights: NamedTensor[] = this.unet.getWeights();
    if (this.keepBatchNormLocal) {
      // The wire format wants every tensor; under FedBN the site echoes the global BN entries it was sent,
      // so its own BN parameters and statistics never leave it (and the coordinator ignores these anyway).
      const globalByName = new Map(global.map((t) => [t.name, t]));
      weights = weights.map((t) => (this.isBatchNorm(t.name) ? (globalByName.get(t.name) ?? t) : t));
    }
    const metrics: Record<string, number> = { [FIT_METRIC.trainLoss]: result.meanLoss, [FIT_METRIC.steps]: result.steps, ...privacy };
    // FedAvg weights a site by its number of training examples (McMahan et al. 2017, Algorithm 1), not by epochs.
    return { weights, numExamples: this.opts.train.n, metrics };
  }

  /**
   * Named statistics on the training split, for a federated statistics round (summed by secure aggregation):
   * - `source-stats`: the source statistics package of the global model (BN moments, per-class latent moments;
   *   Stan & Rostami 2024 sec. 3.2) as vectors scaled by the request's public `scale`, pooled by summation;
   * - `class-histogram`: labelled pixels per class and the class distribution with its squares, from which the
   *   coordinator forms the non-IID report (protocol/class-histogram-vectors.ts); `scale` = 1 / public pixel bound.
   */
  async statistics(global: WeightSet, request: { name: string; config?: Record<string, number | string | boolean> }): Promise<Record<string, Float32Array>> {
    const scale = Number(request.config?.scale ?? 1);
    // A DP request (protocol/privacy/dp-statistics.ts): per-unit bounded contributions; the noise comes at masking.
    const dp = statisticsDpFromConfig(request.config ?? {});
    if (dp && request.name === CLASS_HISTOGRAM_REQUEST) return (await dpClassHistogramVectorsAsync(this.opts.train, dp)).values;
    if (dp && request.name === SOURCE_STATS_REQUEST) {
      this.load(global);
      return (await dpSourceStatsVectorsAsync(this.unet, this.opts.train, dp, Number(request.config?.confidence ?? 0.97))).values;
    }
    if (request.name === CLASS_HISTOGRAM_REQUEST) {
      return classHistogramToVectors(await classPixels(this.opts.train.labels, this.opts.train.numClasses), scale);
    }
    if (request.name !== SOURCE_STATS_REQUEST) {
      throw new ModelError('INVALID_CONFIG', `unknown statistics request "${request.name}" (this site computes "${SOURCE_STATS_REQUEST}", "${CLASS_HISTOGRAM_REQUEST}")`);
    }
    const confidence = Number(request.config?.confidence ?? 0.97);
    this.load(global);
    const stats = await computeSourceStatsAsync(this.unet, this.opts.train, { confidence });
    return sourceStatsToVectors(stats, scale);
  }

  /**
   * Local fine-tuning after federated training ("FedAvg + fine-tuning", the standard personalisation baseline;
   * e.g. Wang et al., "Federated Evaluation of On-device Personalization", 2019, sec. 3): `epochs` passes over
   * the site's own training split starting from the model it last evaluated (the final global model, with its
   * local BN under FedBN), then the validation scores of the personalised model. Nothing leaves the site; the
   * trainer's model is the personalised one afterwards.
   */
  async personalize(opts: { epochs: number; lr: number }): Promise<Record<string, number>> {
    if (!Number.isInteger(opts.epochs) || opts.epochs < 1) throw new ModelError('INVALID_CONFIG', `personalisation epochs must be a positive integer, got ${opts.epochs}`);
    await trainLocal(this.unet, this.opts.train, {
      epochs: opts.epochs,
      batchSize: this.opts.batchSize,
      optimizer: this.opts.optimizer,
      lr: opts.lr,
      loss: this.opts.loss,
      seed: this.opts.seed * 1000 + 999_983,
    });
    return await evaluationMetrics(this.unet, this.opts.val);
  }

  /** Loads the global model (keeping local BN under FedBN) and scores the local validation split per volume. */
  async evaluate(global: WeightSet): Promise<EvaluateOutcome> {
    this.load(global);
    return { numExamples: this.opts.val.n, metrics: await evaluationMetrics(this.unet, this.opts.val) };
  }
}
