import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-core/dist/register_all_gradients';
import { describe, expect, it } from 'vitest';
import { DpGradientAccumulator, poissonSample, seededNoiseSource } from '../../protocol/privacy/index.ts';
import type { UNetConfig } from '../model/unet-config.ts';
import { makeBatch } from './batches.ts';
import { trainLocalDpSgd, type DpSgdTrainConfig } from './dp-sgd.ts';
import { segmentationLoss } from './losses.ts';
import { makeSquaresDataset } from './squares-fixture.ts';
import { TrainError } from './train-error.ts';
import { unetPool } from '../model/unet-pool-fixture.ts';

const GN: UNetConfig = { inChannels: 1, numClasses: 2, baseChannels: 4, depth: 1, normalization: 'group' };
const DATA = makeSquaresDataset(6, 8, 5);
const PLAN = { clip: 0.05, noiseMultiplier: 0.8, samplingRate: 0.5, stepsPerEpoch: 2, expectedBatchSize: 3 };

const make = unetPool(GN, 2);

describe('trainLocalDpSgd', () => {
  it('refuses the batch-norm U-Net (per-example gradients are undefined under batch norm)', async () => {
    const bn = make({ ...GN, normalization: 'batch' });
    const cfg: DpSgdTrainConfig = { epochs: 1, optimizer: 'sgd', lr: 0.1, loss: 'ce', plan: PLAN, noise: seededNoiseSource(1) };
    const err = await trainLocalDpSgd(bn, DATA, cfg).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TrainError);
    expect((err as TrainError).code).toBe('INVALID_CONFIG');
    expect((err as TrainError).message).toMatch(/GroupNorm/);
  });

  it("one step = plain SGD on (sum of per-slice gradients clipped to C + N(0, sigma^2 C^2)) / L, each slice's gradient taken inside a full batch", async () => {
    const unet = make();
    const names = [...unet.trainable.keys()];
    const vars = [...unet.trainable.values()];
    const before = vars.map((v) => new Float32Array(v.dataSync() as Float32Array));

    // Reference, independent of the microbatch path: slice i's gradient is the gradient of ITS loss computed from
    // a forward pass over the whole dataset (group norm: no other slice may influence it), clipped and summed here.
    const replay = seededNoiseSource('dp-sgd-unet');
    const batch = poissonSample(DATA.n, PLAN.samplingRate, replay);
    expect(batch.length).toBeGreaterThan(1);
    const acc = new DpGradientAccumulator(vars.map((v) => v.size), PLAN.clip);
    const all = makeBatch(DATA, Array.from({ length: DATA.n }, (_, i) => i));
    for (const i of batch) {
      const { grads } = tf.variableGrads(() => {
        const logits = unet.forward(all.x, { bn: 'batch' }).logits;
        return segmentationLoss('ce+dice', tf.slice(logits, [i, 0, 0, 0], [1, 8, 8, 2]), tf.slice(all.y, [i, 0, 0], [1, 8, 8]), 2);
      }, vars);
      const norm = acc.add(vars.map((v) => grads[v.name].dataSync() as Float32Array));
      expect(norm).toBeGreaterThan(PLAN.clip); // C is small: every slice is clipped, so clipping is exercised
      for (const g of Object.values(grads)) g.dispose();
    }
    all.x.dispose();
    all.y.dispose();
    const released = acc.release(PLAN.noiseMultiplier, PLAN.expectedBatchSize, replay);

    const lr = 0.5;
    const r = await trainLocalDpSgd(unet, DATA, { epochs: 1, maxSteps: 1, optimizer: 'sgd', momentum: 0, lr, loss: 'ce+dice', plan: PLAN, noise: seededNoiseSource('dp-sgd-unet') });
    expect(r.dpSteps).toBe(1);
    expect(r.examples).toBe(batch.length);
    expect(r.clippedFraction).toBe(1);
    let worst = 0;
    vars.forEach((v, k) => {
      const after = v.dataSync();
      for (let j = 0; j < after.length; j++) worst = Math.max(worst, Math.abs(after[j] - (before[k][j] - lr * released[k][j])));
    });
    expect(names.length).toBe(vars.length);
    expect(worst).toBeLessThan(2e-5);
  });

  it('takes epochs x stepsPerEpoch noised steps, even on an empty Poisson sample (noise only)', async () => {
    const unet = make();
    const plan = { ...PLAN, samplingRate: 0.05, stepsPerEpoch: 3, expectedBatchSize: 0.3 };
    const r = await trainLocalDpSgd(unet, DATA, { epochs: 2, optimizer: 'adam', lr: 1e-3, loss: 'ce', plan, noise: seededNoiseSource('sparse') });
    expect(r.dpSteps).toBe(6);
    expect(r.lossCurve.length).toBe(6);
    expect(r.lossCurve.some((l) => Number.isNaN(l))).toBe(true); // at q = 0.05 over 6 slices most samples are empty
  });
});
