/**
 * Compiled plans against the op-by-op tfjs path (the reference): the same loss and the same gradient for every
 * parameter of every layer type (3x3 conv + batch norm + ReLU, max-pool, nearest upsampling, transposed conv,
 * both concatenation orders, 1x1 head with bias; losses ce, dice, ce+dice, entropy; BN with batch or running
 * statistics), the same weights after optimizer steps, the same inference logits and AdaBN statistics, and
 * bit-identical results across runs and thread counts.
 *
 * Tolerance per tensor: max |plan - ref| <= tol * (1 + max |ref|), tol 1e-5 for losses, 1e-4 for logits and
 * statistics, 1e-3 for gradients and weights after steps (float32 summation order differs; BN over a small
 * batch amplifies it, as in the engine README).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-core/dist/register_all_gradients';
import { loadNativeAddonChecked } from '../native-addon.ts';
import { NATIVE_BACKEND, registerNativeBackend } from '../native-backend.ts';
import { createUNet, type UNet } from '../../model/unet.ts';
import type { UNetConfig } from '../../model/unet-config.ts';
import { createOptimizer, crossEntropyLoss, entropyLoss, segmentationLoss } from '../../training/index.ts';
import { Rng } from '../../../protocol/common/index.ts';
import { createReferenceParams, referenceForward, softmaxCrossEntropy, type ReferenceUNetConfig } from '../bench/reference-unet.ts';
import { CompiledUNet, emptyHyper } from './compiled-unet.ts';
import { CompiledTrainer } from './compiled-trainer.ts';
import { Hyper } from './plan-ops.ts';
import { productUNetFamily, referenceUNetFamily } from './unet-family.ts';
import { compiledUNet, planAdaBN, planInferBatches } from './unet-binding.ts';
import type { PlanLoss } from './plan-ops.ts';

const load = loadNativeAddonChecked();  // throws under FEDSFDA_REQUIRE_NATIVE=1 when the addon is unusable
const d = load.ok ? describe : describe.skip;

function close(name: string, got: ArrayLike<number>, ref: ArrayLike<number>, tol: number): void {
  expect(got.length, `${name}: length`).toBe(ref.length);
  let scale = 0;
  let diff = 0;
  for (let i = 0; i < ref.length; i++) {
    scale = Math.max(scale, Math.abs(ref[i]));
    diff = Math.max(diff, Math.abs(got[i] - ref[i]));
  }
  expect(diff, `${name}: max |diff| ${diff} at scale ${scale}`).toBeLessThanOrEqual(tol * (1 + scale));
}

function data(n: number, seed: number, scale = 1): Float32Array {
  const r = new Rng(seed);
  return Float32Array.from({ length: n }, () => r.normal() * scale);
}

function labelsOf(n: number, k: number, seed: number): Int32Array {
  const r = new Rng(seed);
  return Int32Array.from({ length: n }, () => r.int(k));
}

/** The model's variables by name (trainable and running statistics), in wire order. */
function varsOf(unet: UNet): Map<string, tf.Variable> {
  return new Map(unet.paramNames.map((n) => [n, (unet.trainable.get(n) ?? unet.bnStats.get(n))!]));
}

/** Non-trivial running statistics, so inference-mode BN is exercised. */
function perturbRunningStats(unet: UNet, seed: number): void {
  const r = new Rng(seed);
  for (const [name, v] of unet.bnStats) {
    const vals = Float32Array.from({ length: v.size }, () => (name.endsWith('.var') ? 0.5 + r.next() : r.normal() * 0.2));
    tf.tidy(() => v.assign(tf.tensor(vals, v.shape)));
  }
}

function productLoss(loss: PlanLoss, logits: tf.Tensor, y: tf.Tensor, k: number): tf.Scalar {
  return loss === 'entropy' ? entropyLoss(logits) : segmentationLoss(loss, logits, y, k);
}

d('compiled U-Net plans match the op-by-op path', () => {
  beforeAll(async () => {
    registerNativeBackend();
    await tf.setBackend('cpu');
  });
  afterAll(async () => {
    await tf.setBackend('cpu');
  });

  // Base 8 at level 1 (8-lane vectors), 16 and 32 deeper (16-lane, 2-vector tiles); 2 input channels; a
  // non-square image whose widths (12, 6, 3) exercise the remainder tiles.
  const CFG: UNetConfig = { inChannels: 2, numClasses: 3, baseChannels: 8, depth: 2 };
  const SHAPE = { N: 3, H: 8, W: 12 };

  const cases: { name: string; loss: PlanLoss; bn: 'batch' | 'running'; only?: 'bn' }[] = [
    { name: 'cross-entropy, batch-statistics BN', loss: 'ce', bn: 'batch' },
    { name: 'soft Dice', loss: 'dice', bn: 'batch' },
    { name: 'ce + Dice', loss: 'ce+dice', bn: 'batch' },
    { name: 'ce, BN with running statistics', loss: 'ce', bn: 'running' },
    { name: 'entropy, only BN affine parameters trained (TENT)', loss: 'entropy', bn: 'batch', only: 'bn' },
  ];
  for (const c of cases) {
    it(`product U-Net (transposed conv, concat [skip, up]): ${c.name}: loss and every gradient`, async () => {
      await tf.setBackend('cpu');
      const unet = createUNet(CFG, 7);
      perturbRunningStats(unet, 3);
      const { N, H, W } = SHAPE;
      const xs = data(N * H * W * CFG.inChannels, 11);
      const ys = labelsOf(N * H * W, CFG.numClasses, 12);
      const trainable = [...unet.trainable.keys()].filter((n) => c.only !== 'bn' || unet.parameterKind(n) === 'bn-affine');
      const vars = trainable.map((n) => unet.trainable.get(n)!);
      const x = tf.tensor4d(xs, [N, H, W, CFG.inChannels]);
      const y = tf.tensor3d(ys, [N, H, W], 'int32');
      const { value, grads } = tf.variableGrads(() => productLoss(c.loss, unet.forward(x, { bn: c.bn, collectStats: false }).logits, y, CFG.numClasses), vars);
      const refLoss = value.dataSync()[0];

      const plan = new CompiledUNet(productUNetFamily(CFG), varsOf(unet));
      const prog = plan.program(SHAPE, { kind: 'train', loss: c.loss, bn: c.bn, trainable: new Set(trainable) });
      const loss = prog.run(xs, c.loss === 'entropy' ? null : ys, emptyHyper());
      close('loss', [loss], [refLoss], 1e-5);
      for (const name of trainable) close(name, plan.grad(name), grads[unet.trainable.get(name)!.name].dataSync(), 1e-4);
      if (c.only === 'bn') expect(prog.plan.updated.every((n) => unet.parameterKind(n) === 'bn-affine')).toBe(true);
      tf.dispose([x, y, value, ...Object.values(grads)]);
      unet.dispose();
    });
  }

  it('reference U-Net (nearest upsampling, concat [up, skip], base 16): loss and every gradient vs op-by-op on fedsfda-native', async () => {
    await tf.setBackend(NATIVE_BACKEND);
    const cfg: ReferenceUNetConfig = { inChannels: 1, numClasses: 4, baseChannels: 16, depth: 2 };
    const params = createReferenceParams(cfg, 5);
    const [N, H, W] = [2, 16, 16];
    const xs = data(N * H * W, 21);
    const ys = labelsOf(N * H * W, 4, 22);
    const oneHot = tf.tidy(() => tf.cast(tf.reshape(tf.oneHot(tf.tensor1d(ys, 'int32'), 4), [N, H, W, 4]), 'float32')) as tf.Tensor4D;
    const x = tf.tensor4d(xs, [N, H, W, 1]);
    const { value, grads } = tf.variableGrads(() => softmaxCrossEntropy(referenceForward(params, cfg, x), oneHot), [...params.values()]);
    const plan = new CompiledUNet(referenceUNetFamily(cfg), params);
    const prog = plan.program({ N, H, W }, { kind: 'train', loss: 'ce', bn: 'batch', trainable: new Set(params.keys()) });
    close('loss', [prog.run(xs, ys, emptyHyper())], [value.dataSync()[0]], 1e-5);
    for (const [name, v] of params) close(name, plan.grad(name), grads[v.name].dataSync(), 1e-4);
    tf.dispose([x, oneHot, value, ...Object.values(grads), ...params.values()]);
    await tf.setBackend('cpu');
  });

  it('inference: logits with running statistics (conv + BN + ReLU fused) equal unet.forward(bn: running)', async () => {
    const unet = createUNet(CFG, 8);
    perturbRunningStats(unet, 4);
    const { N, H, W } = { N: 5, H: 8, W: 12 };
    const xs = data(N * H * W * 2, 31);
    const ref = tf.tidy(() => unet.forward(tf.tensor4d(xs, [N, H, W, 2]), { bn: 'running', collectStats: false }).logits.dataSync());
    const got = new Float32Array(ref.length);
    planInferBatches(unet, xs, N, H, W, 2, (logits, first) => got.set(logits, first * H * W * CFG.numClasses));
    close('logits', got, ref, 1e-4);
    unet.dispose();
  });

  it('AdaBN: running statistics = example-weighted average of batch moments, as updateRunningStats computes them', async () => {
    const unet = createUNet(CFG, 9);
    const ref = createUNet(CFG, 9);
    const { N, H, W } = { N: 5, H: 8, W: 12 };
    const xs = data(N * H * W * 2, 41, 2);
    let seen = 0;
    for (const [s, m] of [[0, 2], [2, 2], [4, 1]]) {
      tf.tidy(() => {
        const r = ref.forward(tf.tensor4d(xs.subarray(s * H * W * 2, (s + m) * H * W * 2), [m, H, W, 2]), { bn: 'batch' });
        ref.updateRunningStats(r.batchStats, m / (seen + m));
      });
      seen += m;
    }
    expect(planAdaBN(unet, xs, N, H, W, 2)).toBe(3);
    for (const [name, v] of ref.bnStats) close(name, unet.bnStats.get(name)!.dataSync(), v.dataSync(), 1e-4);
    unet.dispose();
    ref.dispose();
  });

  const optimizers: { name: string; kind: 'sgd' | 'adam'; momentum?: number; weightDecay?: number; mu?: number }[] = [
    { name: 'plain SGD', kind: 'sgd', momentum: 0 },
    { name: 'SGD momentum 0.9', kind: 'sgd', momentum: 0.9 },
    { name: 'Adam', kind: 'adam' },
    { name: 'Adam + weight decay', kind: 'adam', weightDecay: 0.01 },
    { name: 'Adam + FedProx', kind: 'adam', mu: 0.5 },
  ];
  for (const o of optimizers) {
    it(`optimizer fused into the last gradient write: ${o.name}, 3 steps (weights, losses, BN running statistics)`, async () => {
      const ref = createUNet(CFG, 10);
      const unet = createUNet(CFG, 10);
      const { N, H, W } = SHAPE;
      const lr = o.kind === 'adam' ? 1e-2 : 5e-2;
      const opt = createOptimizer({ kind: o.kind, lr, momentum: o.momentum, weightDecay: o.weightDecay });
      const anchorsT = [...ref.trainable].map(([n, v]) => [n, tf.add(v, 0.1)] as const);
      const anchors = new Map(anchorsT.map(([n, t]) => [n, t.dataSync() as Float32Array]));
      const trainer = new CompiledTrainer(compiledUNet(unet), {
        optimizer: o.kind, lr, momentum: o.momentum, weightDecay: o.weightDecay, loss: 'ce+dice', bn: 'batch', bnMomentum: 0.1,
        trainable: new Set(unet.trainable.keys()), proximalMu: o.mu, anchors,
      });
      for (let step = 0; step < 3; step++) {
        const xs = data(N * H * W * 2, 50 + step);
        const ys = labelsOf(N * H * W, 3, 60 + step);
        const x = tf.tensor4d(xs, [N, H, W, 2]);
        const y = tf.tensor3d(ys, [N, H, W], 'int32');
        let stats = new Map<string, { mean: tf.Tensor1D; variance: tf.Tensor1D }>();
        const refLoss = opt.step(() => {
          const out = ref.forward(x, { bn: 'batch' });
          for (const s of out.batchStats.values()) tf.keep(s.mean) && tf.keep(s.variance);
          stats = out.batchStats;
          let l = segmentationLoss('ce+dice', out.logits, y, 3);
          if (o.mu) l = tf.add(l, tf.mul(tf.addN(anchorsT.map(([n, a]) => tf.sum(tf.squaredDifference(ref.trainable.get(n)!, a)))), o.mu / 2));
          return l as tf.Scalar;
        }, [...ref.trainable.values()]);
        ref.updateRunningStats(stats, 0.1);
        for (const s of stats.values()) tf.dispose([s.mean, s.variance]);
        close(`loss at step ${step}`, [trainer.step(xs, SHAPE, ys)], [refLoss], 1e-5);
        tf.dispose([x, y]);
      }
      trainer.model.push();
      for (const name of ref.paramNames) close(name, varsOf(unet).get(name)!.dataSync(), varsOf(ref).get(name)!.dataSync(), 1e-3);
      opt.dispose();
      tf.dispose(anchorsT.map(([, t]) => t));
      ref.dispose();
      unet.dispose();
    });
  }

  it('is bit-reproducible: repeated runs and 1 vs 2 threads give identical losses and gradients', () => {
    if (!load.ok) return;
    const unet = createUNet({ inChannels: 1, numClasses: 4, baseChannels: 16, depth: 2 }, 12);
    const shape = { N: 4, H: 32, W: 32 };
    const xs = data(4 * 32 * 32, 71);
    const ys = labelsOf(4 * 32 * 32, 4, 72);
    const plan = new CompiledUNet(productUNetFamily(unet.config), varsOf(unet));
    const prog = plan.program(shape, { kind: 'train', loss: 'ce+dice', bn: 'batch', trainable: new Set(unet.trainable.keys()) });
    const snapshot = (): Float32Array[] => [Float32Array.of(prog.run(xs, ys, emptyHyper())), ...[...unet.trainable.keys()].map((n) => plan.grad(n))];
    const before = load.addon.threads();
    try {
      const a = snapshot();
      const b = snapshot();
      load.addon.threads(1);
      const c = snapshot();
      for (const other of [b, c]) {
        other.forEach((t, i) => expect(Buffer.from(t.buffer).equals(Buffer.from(a[i].buffer)), `tensor ${i}`).toBe(true));
      }
    } finally {
      load.addon.threads(before);
      unet.dispose();
    }
  });

  it('refuses bad input with clear errors', () => {
    const unet = createUNet(CFG, 13);
    const plan = new CompiledUNet(productUNetFamily(CFG), varsOf(unet));
    const prog = plan.program({ N: 1, H: 8, W: 8 }, { kind: 'train', loss: 'ce', bn: 'batch', trainable: new Set(unet.trainable.keys()) });
    expect(() => prog.run(new Float32Array(5), new Int32Array(64), emptyHyper())).toThrow(/x must be a Float32Array of 128 values/);
    const bad = new Int32Array(64);
    bad[7] = 3;
    expect(() => prog.run(new Float32Array(128), bad, emptyHyper())).toThrow(/label 3 at 7 is not in \[0, 3\)/);
    expect(() => plan.program({ N: 1, H: 6, W: 8 }, { kind: 'infer' })).toThrow(/not divisible by 2\^depth = 4/);
    expect(() => plan.program({ N: 1, H: 8, W: 8 }, { kind: 'train', loss: 'ce', bn: 'batch', trainable: new Set(['head.w']) })).toThrow(/head.w and head.b must be trained together/);
    const h = emptyHyper();
    h[Hyper.optKind] = 0;
    expect(Number.isFinite(prog.run(new Float32Array(128), new Int32Array(64), h))).toBe(true);
    unet.dispose();
  });
});
