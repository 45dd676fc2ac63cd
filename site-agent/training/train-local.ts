import * as tf from '@tensorflow/tfjs-core';
import type { WeightSet } from '../../protocol/index.ts';
import type { SliceDataset } from '../data/index.ts';
import type { BatchNormStats, UNet } from '../model/index.ts';
import { yieldToEventLoop } from './yield-steps.ts';
import { Rng } from '../../protocol/common/index.ts';
import { batchArrays, checkDataset, makeBatch } from './batches.ts';
import { segmentationLoss, type LossKind } from './losses.ts';
import { createOptimizer, type TrainOptimizer } from './optimizer.ts';
import { startPlanTraining } from '../engine/index.ts';
import { TrainError } from './train-error.ts';

export interface TrainConfig {
  readonly epochs: number;
  readonly batchSize: number;
  readonly optimizer: 'sgd' | 'adam';
  readonly lr: number;
  readonly loss: LossKind;
  /** Seeds the per-epoch shuffles: same seed, data and starting weights => identical weights after training. */
  readonly seed: number;
  /** SGD momentum (default 0.9). */
  readonly momentum?: number;
  /** Coupled L2 weight decay on all trainable parameters (default 0). */
  readonly weightDecay?: number;
  /** BN running-stat momentum, PyTorch convention (default 0.1); see UNet.updateRunningStats. */
  readonly bnMomentum?: number;
  /** FedProx mu (default 0 = off); needs globalWeights. */
  readonly proximalMu?: number;
  /** The round's global model, the anchor of the proximal term (only trainable names are used). */
  readonly globalWeights?: WeightSet;
  /** Stop after this many optimizer steps even if epochs remain. */
  readonly maxSteps?: number;
  /** Called after every step with the 0-based step index and the batch loss. */
  readonly onStep?: (step: number, loss: number) => void;
  /** Aborts between steps (round timeout, shutdown); the promise rejects with TrainError('ABORTED'). */
  readonly signal?: AbortSignal;
}

export interface TrainResult {
  readonly steps: number;
  /** Slices processed (counted again in every epoch): the FedAvg weight. */
  readonly examples: number;
  /** Example-weighted mean of the batch losses (including the proximal term when active). */
  readonly meanLoss: number;
  readonly lossCurve: number[];
}

function checkConfig(cfg: TrainConfig): void {
  const posInt = (v: number, k: string): void => {
    if (!Number.isInteger(v) || v < 1) throw new TrainError('INVALID_CONFIG', `trainLocal: ${k} must be a positive integer, got ${v}`);
  };
  posInt(cfg.epochs, 'epochs');
  posInt(cfg.batchSize, 'batchSize');
  if (cfg.maxSteps !== undefined) posInt(cfg.maxSteps, 'maxSteps');
  if (!Number.isInteger(cfg.seed)) throw new TrainError('INVALID_CONFIG', `trainLocal: seed must be an integer, got ${cfg.seed}`);
  const bnm = cfg.bnMomentum ?? 0.1;
  if (!(bnm >= 0 && bnm <= 1)) throw new TrainError('INVALID_CONFIG', `trainLocal: bnMomentum must be in [0, 1], got ${bnm}`);
  const mu = cfg.proximalMu ?? 0;
  if (!(mu >= 0 && Number.isFinite(mu))) throw new TrainError('INVALID_CONFIG', `trainLocal: proximalMu must be >= 0, got ${mu}`);
  if (mu > 0 && cfg.globalWeights === undefined) {
    throw new TrainError('INVALID_CONFIG', 'trainLocal: proximalMu > 0 needs globalWeights (the FedProx anchor)');
  }
  if (cfg.loss !== 'ce' && cfg.loss !== 'dice' && cfg.loss !== 'ce+dice') {
    throw new TrainError('INVALID_CONFIG', `trainLocal: unknown loss '${String(cfg.loss)}' (expected ce, dice or ce+dice)`);
  }
}

/** The FedProx anchors as constant tensors, one per trainable parameter, shape-checked. */
function proximalAnchors(unet: UNet, ws: WeightSet): Map<tf.Variable, tf.Tensor> {
  const byName = new Map(ws.map((t) => [t.name, t]));
  const anchors = new Map<tf.Variable, tf.Tensor>();
  try {
    for (const [name, v] of unet.trainable) {
      const t = byName.get(name);
      if (t === undefined) throw new TrainError('INVALID_CONFIG', `trainLocal: globalWeights lack '${name}'`);
      if (!tf.util.arraysEqual([...t.shape], v.shape) || t.data.length !== v.size) {
        throw new TrainError('INVALID_CONFIG', `trainLocal: globalWeights '${name}' has shape [${t.shape.join(', ')}], expected [${v.shape.join(', ')}]`);
      }
      anchors.set(v, tf.tensor(new Float32Array(t.data), v.shape, 'float32'));
    }
  } catch (e) {
    for (const a of anchors.values()) a.dispose();
    throw e;
  }
  return anchors;
}


/** One optimizer step through tfjs autodiff, op by op (the reference path); returns the loss. */
function tfjsStep(
  unet: UNet,
  data: SliceDataset,
  idx: readonly number[],
  o: { opt: TrainOptimizer; vars: tf.Variable[]; anchors: Map<tf.Variable, tf.Tensor> | null; mu: number; loss: LossKind; bnMomentum: number },
): number {
  const { x, y } = makeBatch(data, idx);
  let stats: Map<string, BatchNormStats> = new Map();
  try {
    const loss = o.opt.step(() => {
      const out = unet.forward(x, { bn: 'batch' });
      // The batch moments must outlive the gradient scope to update the running statistics afterwards.
      for (const s of out.batchStats.values()) {
        tf.keep(s.mean);
        tf.keep(s.variance);
      }
      stats = out.batchStats;
      let l = segmentationLoss(o.loss, out.logits, y, unet.config.numClasses);
      if (o.anchors !== null) {
        // FedProx (Li et al., MLSys 2020, eq. 2): h(w) = F(w) + mu/2 * ||w - w_global||^2.
        const terms = [...o.anchors].map(([v, a]) => tf.sum(tf.squaredDifference(v, a)));
        l = tf.add(l, tf.mul(tf.addN(terms), o.mu / 2));
      }
      return l;
    }, o.vars);
    unet.updateRunningStats(stats, o.bnMomentum);
    return loss;
  } finally {
    x.dispose();
    y.dispose();
    for (const s of stats.values()) {
      s.mean.dispose();
      s.variance.dispose();
    }
  }
}

/**
 * Local supervised training on one site's slices: seeded shuffling each epoch, BN in 'batch' mode with running
 * statistics updated after every step, optional FedProx proximal term.
 * @example
 * const r = await trainLocal(unet, ds, { epochs: 1, batchSize: 8, optimizer: 'adam', lr: 1e-3, loss: 'ce+dice', seed: 7 });
 */
export async function trainLocal(unet: UNet, data: SliceDataset, cfg: TrainConfig): Promise<TrainResult> {
  checkConfig(cfg);
  checkDataset(unet, data, 'trainLocal');
  const mu = cfg.proximalMu ?? 0;
  const bnMomentum = cfg.bnMomentum ?? 0.1;
  const maxSteps = cfg.maxSteps ?? Number.POSITIVE_INFINITY;
  const anchors = mu > 0 && cfg.globalWeights !== undefined ? proximalAnchors(unet, cfg.globalWeights) : null;
  const opt = createOptimizer({ kind: cfg.optimizer, lr: cfg.lr, momentum: cfg.momentum, weightDecay: cfg.weightDecay });
  const vars = [...unet.trainable.values()];
  // The compiled plan when the engine runs them (fedsfda-native), else tfjs op by op: the same step.
  const plan = startPlanTraining(unet, {
    optimizer: cfg.optimizer, lr: cfg.lr, momentum: cfg.momentum, weightDecay: cfg.weightDecay, loss: cfg.loss, bnMomentum,
    ...(anchors !== null ? { proximalMu: mu, globalWeights: cfg.globalWeights } : {}),
  });
  const step = (idx: readonly number[]): number => {
    if (plan === null) return tfjsStep(unet, data, idx, { opt, vars, anchors, mu, loss: cfg.loss, bnMomentum });
    const { xs, ys } = batchArrays(data, idx);
    return plan.step(xs, ys, idx.length, data.height, data.width);
  };
  const rng = new Rng(cfg.seed);
  const lossCurve: number[] = [];
  let examples = 0;
  let weighted = 0;
  try {
    for (let epoch = 0; epoch < cfg.epochs && lossCurve.length < maxSteps; epoch++) {
      const order = rng.shuffle(Array.from({ length: data.n }, (_, i) => i));
      for (let b = 0; b < data.n && lossCurve.length < maxSteps; b += cfg.batchSize) {
        if (cfg.signal?.aborted === true) throw new TrainError('ABORTED', `trainLocal: aborted after ${lossCurve.length} steps`);
        const idx = order.slice(b, b + cfg.batchSize);
        const loss = step(idx);
        if (!Number.isFinite(loss)) {
          throw new TrainError('DIVERGED', `trainLocal: loss became ${loss} at step ${lossCurve.length} (learning rate too high?)`);
        }
        lossCurve.push(loss);
        examples += idx.length;
        weighted += loss * idx.length;
        cfg.onStep?.(lossCurve.length - 1, loss);
        await yieldToEventLoop();
      }
    }
  } finally {
    plan?.finish();
    opt.dispose();
    if (anchors !== null) for (const a of anchors.values()) a.dispose();
  }
  return { steps: lossCurve.length, examples, meanLoss: examples > 0 ? weighted / examples : Number.NaN, lossCurve };
}
