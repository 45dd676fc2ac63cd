/**
 * Local training with sample-level DP-SGD (Abadi et al., CCS 2016, Alg. 1; plan and accounting in
 * protocol/privacy/dp-sgd-plan.ts, clipping and noise in protocol/privacy/dp-sgd-step.ts).
 *
 * Per step: a Poisson sample of the site's slices; for each sampled slice its own gradient (a microbatch of one:
 * forward, loss on that slice alone, backward), clipped to L2 norm C over all trainable parameters together; the
 * clipped sum plus N(0, sigma^2 C^2 I), divided by the expected batch size, goes to the optimizer (SGD or Adam: both
 * only post-process the released gradient). Batch norm would make one slice's gradient depend on the others in its
 * batch, so only the GroupNorm U-Net is accepted (`normalization: 'group'`, as Opacus replaces BN by GN).
 * Per-example gradients are B separate backward passes on the op-by-op tfjs path (tfjs has no vmap; the engine's
 * compiled training plan computes batch gradients only): a step costs about B one-slice steps
 * (BENCHMARKS.md, "DP-SGD step cost").
 */
import * as tf from '@tensorflow/tfjs-core';
import { setImmediate as setImmediatePromise } from 'node:timers/promises';
import type { WeightSet } from '../../protocol/index.ts';
import { DpGradientAccumulator, poissonSample, type DpSgdPlan, type NoiseSource } from '../../protocol/privacy/index.ts';
import type { SliceDataset } from '../data/index.ts';
import { normalizationOf, type UNet } from '../model/index.ts';
import { checkDataset, makeBatch } from './batches.ts';
import { segmentationLoss, type LossKind } from './losses.ts';
import { createOptimizer } from './optimizer.ts';
import { TrainError } from './train-error.ts';
import type { TrainResult } from './train-local.ts';

export interface DpSgdTrainConfig {
  readonly epochs: number;
  readonly optimizer: 'sgd' | 'adam';
  readonly lr: number;
  readonly loss: LossKind;
  readonly momentum?: number;
  readonly weightDecay?: number;
  /** FedProx mu: the proximal gradient mu (w - w_global) is data-independent and added after the noise. */
  readonly proximalMu?: number;
  readonly globalWeights?: WeightSet;
  readonly maxSteps?: number;
  readonly onStep?: (step: number, loss: number) => void;
  readonly signal?: AbortSignal;
  /** Clip, noise multiplier, sampling rate, steps per epoch and expected batch size (planDpSgd). */
  readonly plan: Pick<DpSgdPlan, 'clip' | 'noiseMultiplier' | 'samplingRate' | 'stepsPerEpoch' | 'expectedBatchSize'>;
  /** Randomness of the Poisson samples and of the noise: cryptoNoiseSource() in real runs. */
  readonly noise: NoiseSource;
}

export interface DpSgdTrainResult extends TrainResult {
  /** Noised steps taken (each one a sampled Gaussian mechanism for the ledger). */
  readonly dpSteps: number;
  /** Examples whose gradient norm exceeded C, over examples drawn. */
  readonly clippedFraction: number;
  /** Mean realised Poisson batch size. */
  readonly meanBatch: number;
  /** Median per-example gradient norm before clipping (local diagnostic for choosing C; never sent). */
  readonly medianGradNorm: number;
}

function checkDpConfig(unet: UNet, cfg: DpSgdTrainConfig): void {
  if (normalizationOf(unet.config) !== 'group') {
    throw new TrainError('INVALID_CONFIG', 'DP-SGD needs the GroupNorm U-Net (model normalization "group"): batch norm mixes the examples of a batch, so per-example gradients are undefined');
  }
  if (!Number.isInteger(cfg.epochs) || cfg.epochs < 1) throw new TrainError('INVALID_CONFIG', `DP-SGD: epochs must be a positive integer, got ${cfg.epochs}`);
  if (cfg.maxSteps !== undefined && (!Number.isInteger(cfg.maxSteps) || cfg.maxSteps < 1)) throw new TrainError('INVALID_CONFIG', `DP-SGD: maxSteps must be a positive integer, got ${cfg.maxSteps}`);
  const p = cfg.plan;
  if (!(p.clip > 0 && p.noiseMultiplier > 0 && p.samplingRate > 0 && p.samplingRate <= 1 && Number.isInteger(p.stepsPerEpoch) && p.stepsPerEpoch >= 1 && p.expectedBatchSize > 0)) {
    throw new TrainError('INVALID_CONFIG', `DP-SGD: invalid plan ${JSON.stringify(p)}`);
  }
  const mu = cfg.proximalMu ?? 0;
  if (!(mu >= 0) || (mu > 0 && cfg.globalWeights === undefined)) throw new TrainError('INVALID_CONFIG', 'DP-SGD: proximalMu must be >= 0 and needs globalWeights');
}

/** One slice's loss and its gradients over `vars`, copied out of tfjs (float32). */
function exampleGradient(unet: UNet, data: SliceDataset, index: number, loss: LossKind, vars: tf.Variable[]): { loss: number; grads: Float32Array[] } {
  const { x, y } = makeBatch(data, [index]);
  try {
    const { value, grads } = tf.variableGrads(() => segmentationLoss(loss, unet.forward(x, { bn: 'batch', collectStats: false }).logits, y, unet.config.numClasses), vars);
    try {
      // A parameter that does not reach the loss gets no gradient entry: its gradient is zero.
      return { loss: value.dataSync()[0], grads: vars.map((v) => (grads[v.name] ? (grads[v.name].dataSync() as Float32Array) : new Float32Array(v.size))) };
    } finally {
      value.dispose();
      for (const g of Object.values(grads)) g.dispose();
    }
  } finally {
    x.dispose();
    y.dispose();
  }
}

/** The proximal gradient mu (w - w_global) per variable, or null. */
function proximalGradients(entries: readonly (readonly [string, tf.Variable])[], cfg: DpSgdTrainConfig): Float32Array[] | null {
  const mu = cfg.proximalMu ?? 0;
  if (mu === 0 || !cfg.globalWeights) return null;
  const byName = new Map(cfg.globalWeights.map((t) => [t.name, t.data]));
  return entries.map(([name, v]) => {
    const g = byName.get(name);
    if (!g || g.length !== v.size) throw new TrainError('INVALID_CONFIG', `DP-SGD: globalWeights lack '${name}' or have the wrong size`);
    const w = v.dataSync() as Float32Array;
    return Float32Array.from(w, (x, i) => mu * (x - g[i]));
  });
}

/**
 * Trains with DP-SGD for `cfg.epochs` epochs of `plan.stepsPerEpoch` Poisson-sampled steps.
 * @example
 * const plan = planDpSgd({ clip: 1, targetEpsilon: 8 }, { examples: ds.n, batchSize: 8, plannedEpochs: 12 });
 * await trainLocalDpSgd(gnUnet, ds, { epochs: 1, optimizer: 'adam', lr: 1e-3, loss: 'ce+dice', plan, noise: cryptoNoiseSource() });
 */
export async function trainLocalDpSgd(unet: UNet, data: SliceDataset, cfg: DpSgdTrainConfig): Promise<DpSgdTrainResult> {
  checkDpConfig(unet, cfg);
  checkDataset(unet, data, 'trainLocalDpSgd');
  const { plan } = cfg;
  const entries = [...unet.trainable];
  const vars = entries.map(([, v]) => v);
  const opt = createOptimizer({ kind: cfg.optimizer, lr: cfg.lr, momentum: cfg.momentum, weightDecay: cfg.weightDecay });
  const maxSteps = cfg.maxSteps ?? Number.POSITIVE_INFINITY;
  const lossCurve: number[] = [];
  const norms: number[] = [];
  let drawn = 0;
  let clipped = 0;
  let lossSum = 0;
  try {
    for (let epoch = 0; epoch < cfg.epochs; epoch++) {
      for (let s = 0; s < plan.stepsPerEpoch && lossCurve.length < maxSteps; s++) {
        if (cfg.signal?.aborted === true) throw new TrainError('ABORTED', `trainLocalDpSgd: aborted after ${lossCurve.length} steps`);
        const batch = poissonSample(data.n, plan.samplingRate, cfg.noise);
        const acc = new DpGradientAccumulator(vars.map((v) => v.size), plan.clip);
        let stepLoss = 0;
        for (const i of batch) {
          const ex = exampleGradient(unet, data, i, cfg.loss, vars);
          norms.push(acc.add(ex.grads));
          stepLoss += ex.loss;
        }
        const released = acc.release(plan.noiseMultiplier, plan.expectedBatchSize, cfg.noise);
        const prox = proximalGradients(entries, cfg);
        const grads: Record<string, tf.Tensor> = {};
        vars.forEach((v, k) => {
          const g = Float32Array.from(released[k]);
          if (prox) for (let i = 0; i < g.length; i++) g[i] += prox[k][i];
          grads[v.name] = tf.tensor(g, v.shape, 'float32');
        });
        opt.apply(grads, vars);
        // The loss of an empty Poisson sample is undefined; the curve records NaN for it (not sent anywhere).
        const mean = batch.length > 0 ? stepLoss / batch.length : Number.NaN;
        if (batch.length > 0 && !Number.isFinite(mean)) throw new TrainError('DIVERGED', `trainLocalDpSgd: loss became ${mean} at step ${lossCurve.length}`);
        lossCurve.push(mean);
        drawn += batch.length;
        clipped += acc.clipped;
        lossSum += stepLoss;
        cfg.onStep?.(lossCurve.length - 1, mean);
        await setImmediatePromise();
      }
    }
  } finally {
    opt.dispose();
  }
  const sorted = [...norms].sort((a, b) => a - b);
  return {
    steps: lossCurve.length,
    examples: drawn,
    meanLoss: drawn > 0 ? lossSum / drawn : Number.NaN,
    lossCurve,
    dpSteps: lossCurve.length,
    clippedFraction: drawn > 0 ? clipped / drawn : 0,
    meanBatch: lossCurve.length > 0 ? drawn / lossCurve.length : 0,
    medianGradNorm: sorted.length > 0 ? sorted[Math.floor(sorted.length / 2)] : Number.NaN,
  };
}
