import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-core/dist/register_all_gradients';
import { describe, expect, it, vi } from 'vitest';
import type { WeightSet } from '../../protocol/named-tensor.ts';
import type { UNet } from '../model/unet.ts';
import type { UNetConfig } from '../model/unet-config.ts';
import { evaluateDice, predict, predictProbs } from '../evaluation/index.ts';
import { makeSquaresDataset } from './squares-fixture.ts';
import { TrainError } from './train-error.ts';
import { trainLocal, type TrainConfig } from './train-local.ts';
import { unetPool } from '../model/unet-pool-fixture.ts';

const TINY: UNetConfig = { inChannels: 1, numClasses: 2, baseChannels: 4, depth: 2 };
const DATA = makeSquaresDataset(8, 16, 3);
const BASE: TrainConfig = { epochs: 1, batchSize: 2, optimizer: 'adam', lr: 0.01, loss: 'ce+dice', seed: 1 };

const unets = unetPool(TINY, 1);
const make = (seed = 1): UNet => unets(TINY, seed);

function distance(a: WeightSet, b: WeightSet): number {
  let s = 0;
  a.forEach((t, i) => t.data.forEach((v, j) => (s += (v - b[i].data[j]) ** 2)));
  return Math.sqrt(s);
}

async function expectTrainError(p: Promise<unknown>, code: string, text: RegExp): Promise<void> {
  const err = await p.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(TrainError);
  expect((err as TrainError).code).toBe(code);
  expect((err as TrainError).message).toMatch(text);
}

describe('trainLocal', () => {
  it('learns bright squares: loss falls and Dice > 0.8 within a few dozen steps', async () => {
    const unet = make(2);
    const before = evaluateDice(unet, DATA);
    const r = await trainLocal(unet, DATA, { ...BASE, epochs: 6 });
    expect(r.steps).toBe(24);
    expect(r.examples).toBe(48);
    expect(r.lossCurve).toHaveLength(24);
    expect(r.meanLoss).toBeCloseTo(r.lossCurve.reduce((a, b) => a + b) / 24, 6);
    const head = r.lossCurve.slice(0, 4).reduce((a, b) => a + b) / 4;
    const tail = r.lossCurve.slice(-4).reduce((a, b) => a + b) / 4;
    expect(tail).toBeLessThan(head * 0.5);
    const after = evaluateDice(unet, DATA);
    expect(after.mean).toBeGreaterThan(0.8);
    expect(after.mean).toBeGreaterThan(before.mean);
    // Generalises to unseen squares too (same generator, other seed).
    expect(evaluateDice(unet, makeSquaresDataset(8, 16, 99)).mean).toBeGreaterThan(0.7);
  });

  it('same seed => identical weights; another seed => different weights', async () => {
    const [a, b, c] = [make(5), make(5), make(5)];
    await trainLocal(a, DATA, { ...BASE, maxSteps: 3, seed: 7 });
    await trainLocal(b, DATA, { ...BASE, maxSteps: 3, seed: 7 });
    await trainLocal(c, DATA, { ...BASE, maxSteps: 3, seed: 8 });
    expect(b.getWeights()).toEqual(a.getWeights());
    expect(distance(c.getWeights(), a.getWeights())).toBeGreaterThan(0);
  });

  it('keeps tensor count flat across steps and releases everything at the end', async () => {
    const unet = make();
    const start = tf.memory().numTensors;
    const counts: number[] = [];
    await trainLocal(unet, DATA, { ...BASE, optimizer: 'sgd', lr: 0.05, epochs: 2, onStep: () => counts.push(tf.memory().numTensors) });
    expect(counts).toHaveLength(8);
    // The first step creates the optimizer's momentum slots; from then on nothing accumulates.
    expect(new Set(counts.slice(1)).size).toBe(1);
    expect(tf.memory().numTensors).toBe(start);
  });

  it('updates BN running statistics with bnMomentum', async () => {
    const unet = make();
    const init = unet.getWeights().filter((t) => unet.parameterKind(t.name) === 'bn-stat');
    await trainLocal(unet, DATA, { ...BASE, maxSteps: 1, bnMomentum: 0 });
    const frozen = unet.getWeights().filter((t) => unet.parameterKind(t.name) === 'bn-stat');
    expect(frozen).toEqual(init);
    await trainLocal(unet, DATA, { ...BASE, maxSteps: 1, bnMomentum: 0.1 });
    const moved = unet.getWeights().filter((t) => unet.parameterKind(t.name) === 'bn-stat');
    expect(distance(moved, init)).toBeGreaterThan(0);
  });

  it('FedProx: the proximal term is 0 at the anchor and keeps weights closer to it', async () => {
    const [free, prox] = [make(4), make(4)];
    const global = free.getWeights();
    const rFree = await trainLocal(free, DATA, { ...BASE, optimizer: 'sgd', lr: 0.05, maxSteps: 4 });
    const rProx = await trainLocal(prox, DATA, { ...BASE, optimizer: 'sgd', lr: 0.05, maxSteps: 4, proximalMu: 5, globalWeights: global });
    // Step 0 starts at w = w_global, so both see the same loss there.
    expect(rProx.lossCurve[0]).toBeCloseTo(rFree.lossCurve[0], 5);
    const trainable = (ws: WeightSet): WeightSet => ws.filter((t) => free.parameterKind(t.name) !== 'bn-stat');
    expect(distance(trainable(prox.getWeights()), trainable(global))).toBeLessThan(
      distance(trainable(free.getWeights()), trainable(global)),
    );
  });

  it('rejects bad configs and data with typed errors', async () => {
    const unet = make();
    await expectTrainError(trainLocal(unet, DATA, { ...BASE, proximalMu: 0.1 }), 'INVALID_CONFIG', /globalWeights/);
    await expectTrainError(trainLocal(unet, DATA, { ...BASE, batchSize: 0 }), 'INVALID_CONFIG', /batchSize/);
    await expectTrainError(trainLocal(unet, DATA, { ...BASE, loss: 'l2' as 'ce' }), 'INVALID_CONFIG', /unknown loss/);
    const badLabels = { ...DATA, labels: DATA.labels.map((v, i) => (i === 5 ? 7 : v)) };
    await expectTrainError(trainLocal(unet, badLabels, BASE), 'INVALID_DATA', /label 7 at index 5/);
    await expectTrainError(trainLocal(unet, { ...DATA, channels: 2 }, BASE), 'INVALID_DATA', /2 channels/);
    await expectTrainError(trainLocal(unet, { ...DATA, numClasses: 3 }, BASE), 'INVALID_DATA', /3 classes/);
    const short = { ...DATA, images: DATA.images.subarray(1) };
    await expectTrainError(trainLocal(unet, short, BASE), 'INVALID_DATA', /Float32Array/);
    const partial = unet.getWeights().slice(1);
    await expectTrainError(
      trainLocal(unet, DATA, { ...BASE, proximalMu: 0.1, globalWeights: partial }),
      'INVALID_CONFIG',
      /enc1\.conv1\.w/,
    );
  });

  it('completes under fake timers (a caller\'s test may fake setImmediate)', async () => {
    vi.useFakeTimers();
    try {
      const r = await trainLocal(make(), DATA, { ...BASE, maxSteps: 2 });
      expect(r.steps).toBe(2);
    } finally {
      vi.useRealTimers();
    }
  });

  it('stops between steps when aborted', async () => {
    const unet = make();
    const ac = new AbortController();
    const start = tf.memory().numTensors;
    await expectTrainError(
      trainLocal(unet, DATA, { ...BASE, epochs: 5, signal: ac.signal, onStep: (s) => (s === 1 ? ac.abort() : undefined) }),
      'ABORTED',
      /after 2 steps/,
    );
    expect(tf.memory().numTensors).toBe(start);
  });
});

describe('predict / predictProbs / evaluateDice', () => {
  it('probabilities sum to 1 and their argmax is predict', () => {
    const unet = make();
    const images = DATA.images.subarray(0, 3 * 256);
    const probs = predictProbs(unet, images, 3, 16, 16, 1, 2);
    const labels = predict(unet, images, 3, 16, 16, 1, 2);
    expect(probs).toHaveLength(3 * 256 * 2);
    expect(labels).toHaveLength(3 * 256);
    for (let i = 0; i < 3 * 256; i++) {
      expect(probs[2 * i] + probs[2 * i + 1]).toBeCloseTo(1, 5);
      expect(labels[i]).toBe(probs[2 * i + 1] > probs[2 * i] ? 1 : 0);
    }
    // Batch size does not change the result (BN uses running statistics).
    expect(predict(unet, images, 3, 16, 16, 1, 3)).toEqual(labels);
    expect(() => predict(unet, images, 3, 16, 15, 1, 2)).toThrow(TrainError);
    expect(() => predict(unet, DATA.images, 3, 16, 16, 1, 2)).toThrow(/768 values/);
  });

  it('evaluateDice matches a hand computation for an all-background model', () => {
    const unet = make();
    const ws = unet.getWeights().map((t) =>
      t.name === 'head.w' ? { ...t, data: new Float32Array(t.data.length) } : t.name === 'head.b' ? { ...t, data: new Float32Array([10, 0]) } : t,
    );
    unet.setWeights(ws);
    const d = evaluateDice(unet, DATA);
    const total = DATA.labels.length;
    const bg = DATA.labels.reduce((s, v) => s + (v === 0 ? 1 : 0), 0);
    expect(d.perClass[0]).toBeCloseTo((2 * bg) / (total + bg), 10);
    expect(d.perClass[1]).toBe(0);
    expect(d.mean).toBe(0);
  });
});
