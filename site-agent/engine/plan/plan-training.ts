/**
 * Training or test-time adaptation of site-agent/model's U-Net on a compiled plan, for site-agent/train's
 * trainLocal and site-agent/adapt's TENT: the same step semantics (optimizer, loss, FedProx, BN running
 * statistics), weights pulled from the tfjs model at the start and written back by `finish()` (also after an
 * error, like the op-by-op path, whose updates land in the variables step by step).
 */
import type { UNet } from '../../model/index.ts';
import { EngineError } from '../errors.ts';
import { CompiledTrainer } from './compiled-trainer.ts';
import type { PlanLoss } from './plan-ops.ts';
import { compiledUNet, plansEnabled } from './unet-binding.ts';

export interface PlanTrainingConfig {
  readonly optimizer: 'sgd' | 'adam';
  readonly lr: number;
  readonly momentum?: number;
  readonly weightDecay?: number;
  /** Adam epsilon (createOptimizer: 1e-8; tf.train.adam(lr) without one: the backend's, 1e-7). */
  readonly adamEps?: number;
  /** 'entropy' needs no labels (TENT). */
  readonly loss: PlanLoss;
  /** Running statistics momentum per step; undefined: running statistics are left alone (TENT). */
  readonly bnMomentum?: number;
  /** Parameters to train (default: every trainable parameter). */
  readonly trainable?: Iterable<string>;
  readonly proximalMu?: number;
  /** FedProx anchors by parameter name (the round's global model). */
  readonly globalWeights?: readonly { readonly name: string; readonly data: Float32Array }[];
}

export interface PlanTrainingSession {
  /** One step on a batch of n NHWC images and n*h*w class indices (null for 'entropy'); returns the loss. */
  step(images: Float32Array, labels: Int32Array | null, n: number, h: number, w: number): number;
  /** Writes the trained weights and running statistics back to the tfjs model. */
  finish(): void;
}

/** A plan-backed training session, or null when plans are off (other backend, FEDSFDA_ENGINE=ops). */
export function startPlanTraining(unet: UNet, cfg: PlanTrainingConfig): PlanTrainingSession | null {
  if (!plansEnabled(unet)) return null;
  const model = compiledUNet(unet);
  const anchors = cfg.globalWeights ? new Map(cfg.globalWeights.map((t) => [t.name, t.data])) : undefined;
  const trainer = new CompiledTrainer(model, {
    optimizer: cfg.optimizer,
    lr: cfg.lr,
    momentum: cfg.momentum,
    weightDecay: cfg.weightDecay,
    ...(cfg.adamEps !== undefined ? { adam: { beta1: 0.9, beta2: 0.999, eps: cfg.adamEps } } : {}),
    loss: cfg.loss,
    bn: 'batch',
    bnMomentum: cfg.bnMomentum,
    trainable: new Set(cfg.trainable ?? unet.trainable.keys()),
    proximalMu: cfg.proximalMu,
    anchors,
  });
  let finished = false;
  return {
    step(images, labels, n, h, w) {
      if (finished) throw new EngineError('BAD_ARGUMENT', 'plan training session already finished');
      return trainer.step(images, { N: n, H: h, W: w }, labels);
    },
    finish() {
      if (finished) return;
      finished = true;
      model.push();
    },
  };
}
