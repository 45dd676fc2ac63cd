/**
 * One training step of the benchmark networks on either engine path, from fresh seeded weights and one fixed
 * batch: 'ops' (tfjs autodiff op by op on the active backend, the reference) or 'plan' (a compiled plan).
 *   reference: the engine's plain-ops U-Net (nearest upsampling), softmax cross-entropy, plain SGD lr 0.01
 *   unet:      site-agent/model's U-Net trained as site-agent/train does by default in the scenarios
 *              (Adam lr 1e-3, ce + Dice, BN running statistics updated with momentum 0.1)
 */
import * as tf from '@tensorflow/tfjs-core';
import { createReferenceParams, randomBatch, referenceTrainStep, type ReferenceUNetConfig } from './reference-unet.ts';
import { CompiledUNet, type OpProfile } from '../plan/compiled-unet.ts';
import { CompiledTrainer, type CompiledTrainConfig } from '../plan/compiled-trainer.ts';
import { productUNetFamily, referenceUNetFamily } from '../plan/unet-family.ts';

export interface Stepper {
  /** One full step (forward, loss, backward, update); returns the loss (read back, so the step is complete). */
  step(): number;
  dispose(): void;
  /** Compiled plans: wall and CPU milliseconds per op kind of the last step. */
  opProfile?(): OpProfile[];
}

export type BenchModel = 'reference' | 'unet';
export type BenchEngine = 'ops' | 'plan';

/** The optimizer and loss each benchmark model trains with (the PyTorch script is told the same). */
export const BENCH_TRAINING = {
  reference: { optimizer: 'sgd', momentum: 0, lr: 0.01, loss: 'ce' },
  unet: { optimizer: 'adam', momentum: 0, lr: 1e-3, loss: 'ce+dice' },
} as const;

function classIndices(oneHot: tf.Tensor4D): Int32Array {
  return tf.tidy(() => tf.argMax(oneHot, -1).dataSync() as Int32Array);
}

export async function makeStepper(model: BenchModel, engine: BenchEngine, c: ReferenceUNetConfig, batch: number, size: number): Promise<Stepper> {
  const { x, y } = randomBatch(c, batch, size, size, 99);
  const shape = { N: batch, H: size, W: size };
  const xs = x.dataSync() as Float32Array;
  const labels = classIndices(y);
  if (model === 'reference') {
    const params = createReferenceParams(c, 1234);
    const dispose = (): void => tf.dispose([x, y, ...params.values()]);
    if (engine === 'ops') return { step: () => referenceTrainStep(params, c, x, y, BENCH_TRAINING.reference.lr), dispose };
    const plan = new CompiledUNet(referenceUNetFamily(c), params);
    const trainer = new CompiledTrainer(plan, { optimizer: 'sgd', momentum: 0, lr: BENCH_TRAINING.reference.lr, loss: 'ce', bn: 'batch', trainable: new Set(params.keys()) });
    return { step: () => trainer.step(xs, shape, labels), dispose, opProfile: () => trainer.profile() };
  }
  // Imported lazily: the model and training layers import the engine, so static imports would be cycles.
  const { createUNet } = await import('../../model/index.ts');
  const { createOptimizer, segmentationLoss } = await import('../../training/index.ts');
  const { compiledUNet } = await import('../plan/unet-binding.ts');
  const unet = createUNet({ inChannels: c.inChannels, numClasses: c.numClasses, baseChannels: c.baseChannels, depth: c.depth }, 1234);
  const t = BENCH_TRAINING.unet;
  if (engine === 'plan') {
    const cfg: CompiledTrainConfig = { optimizer: 'adam', lr: t.lr, loss: t.loss, bn: 'batch', bnMomentum: 0.1, trainable: new Set(unet.trainable.keys()) };
    const trainer = new CompiledTrainer(compiledUNet(unet), cfg);
    return {
      step: () => trainer.step(xs, shape, labels),
      opProfile: () => trainer.profile(),
      dispose: () => {
        unet.dispose();
        tf.dispose([x, y]);
      },
    };
  }
  const opt = createOptimizer({ kind: 'adam', lr: t.lr });
  const vars = [...unet.trainable.values()];
  const yIdx = tf.tensor3d(labels, [batch, size, size], 'int32');
  return {
    step: () => {
      let stats = new Map<string, { mean: tf.Tensor1D; variance: tf.Tensor1D }>();
      const loss = opt.step(() => {
        const out = unet.forward(x, { bn: 'batch' });
        for (const s of out.batchStats.values()) {
          tf.keep(s.mean);
          tf.keep(s.variance);
        }
        stats = out.batchStats;
        return segmentationLoss(t.loss, out.logits, yIdx, c.numClasses);
      }, vars);
      unet.updateRunningStats(stats, 0.1);
      for (const s of stats.values()) tf.dispose([s.mean, s.variance]);
      return loss;
    },
    dispose: () => {
      opt.dispose();
      unet.dispose();
      tf.dispose([x, y, yIdx]);
    },
  };
}
