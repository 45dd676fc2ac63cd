/**
 * The product paths on compiled plans (fedsfda-native, FEDSFDA_ENGINE unset) against the same calls op by op
 * (FEDSFDA_ENGINE=ops): trainLocal (Adam, ce + Dice, weight decay), predict / predictProbs, TENT and AdaBN give the
 * same losses, weights, statistics and predictions within tolerance, and the plan path really ran.
 * (FedProx on plans is compared with the op-by-op optimizer in compiled-unet.test.ts: trainLocal's op-by-op
 * FedProx step fails inside vitest once initEngine has run (tfjs AddN gradient gets a null dy; it runs under
 * tsx), so it cannot be the reference here.)
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-core/dist/register_all_gradients';
import { loadNativeAddonChecked } from '../native-addon.ts';
import { initEngine, resetEngine } from '../select-backend.ts';
import { createUNet, type UNet } from '../../model/unet.ts';
import { makeSquaresDataset, trainLocal, type TrainConfig } from '../../training/index.ts';
import { predict, predictProbs } from '../../evaluation/index.ts';
import { adaptTent } from '../../adapt/tent.ts';
import { adaptAdaBN } from '../../adapt/adabn.ts';
import { compiledUNet, plansEnabled } from './unet-binding.ts';
import { startPlanTraining } from './plan-training.ts';

const load = loadNativeAddonChecked();  // throws under FEDSFDA_REQUIRE_NATIVE=1 when the addon is unusable
const d = load.ok ? describe : describe.skip;

function close(name: string, got: ArrayLike<number>, ref: ArrayLike<number>, tol: number): void {
  let scale = 0;
  let diff = 0;
  for (let i = 0; i < ref.length; i++) {
    scale = Math.max(scale, Math.abs(ref[i]));
    diff = Math.max(diff, Math.abs(got[i] - ref[i]));
  }
  expect(got.length).toBe(ref.length);
  expect(diff, `${name}: max |diff| ${diff} at scale ${scale}`).toBeLessThanOrEqual(tol * (1 + scale));
}

/** Runs f with FEDSFDA_ENGINE set (or unset), restoring it afterwards. */
async function withEngine<T>(mode: 'ops' | undefined, f: () => Promise<T> | T): Promise<T> {
  const saved = process.env.FEDSFDA_ENGINE;
  if (mode === undefined) delete process.env.FEDSFDA_ENGINE;
  else process.env.FEDSFDA_ENGINE = mode;
  try {
    return await f();
  } finally {
    if (saved === undefined) delete process.env.FEDSFDA_ENGINE;
    else process.env.FEDSFDA_ENGINE = saved;
  }
}

function weights(u: UNet): Map<string, Float32Array> {
  return new Map(u.getWeights().map((t) => [t.name, t.data]));
}

d('product paths on compiled plans equal the op-by-op path', () => {
  const CFG = { inChannels: 1, numClasses: 2, baseChannels: 8, depth: 2 };
  const data = makeSquaresDataset(10, 16, 3);
  const models: UNet[] = [];
  const make = (): UNet => {
    const u = createUNet(CFG, 5);
    models.push(u);
    return u;
  };
  beforeAll(async () => {
    resetEngine();
    await initEngine({ backend: 'native' });
  });
  afterAll(() => {
    for (const m of models) m.dispose();
    resetEngine();
  });

  it('FEDSFDA_ENGINE selects the path; a wrong value is refused', async () => {
    expect(plansEnabled()).toBe(true);
    await withEngine('ops', () => expect(plansEnabled()).toBe(false));
    process.env.FEDSFDA_ENGINE = 'fast';
    try {
      expect(() => plansEnabled()).toThrow(/FEDSFDA_ENGINE must be 'plan' or 'ops'/);
    } finally {
      delete process.env.FEDSFDA_ENGINE;
    }
  });

  it('a GroupNorm U-Net (DP-SGD sites) is not planned: training and inference stay op by op, compiling it is refused', () => {
    const g = createUNet({ ...CFG, normalization: 'group' }, 5);
    models.push(g);
    expect(plansEnabled()).toBe(true);
    expect(plansEnabled(g)).toBe(false);
    expect(plansEnabled(make())).toBe(true);
    expect(startPlanTraining(g, { optimizer: 'adam', lr: 1e-2, loss: 'ce' })).toBeNull();
    // Inference runs on tfjs ops (training op by op is covered by site-agent/model/group-norm.test.ts: under vitest,
    // once initEngine has run, tfjs's Cast gradient gets a null dy, the same failure as FedProx's AddN above).
    const probs = predictProbs(g, data.images, data.n, 16, 16, 1, 3);
    expect(probs.length).toBe(data.n * 16 * 16 * CFG.numClasses);
    expect(probs.every(Number.isFinite)).toBe(true);
    expect(() => compiledUNet(g)).toThrow(/only batch-norm U-Nets are planned/);
  });

  it('trainLocal (Adam, ce + Dice, weight decay, batch 4 with a smaller last batch): same loss curve and weights', async () => {
    const a = make();
    const b = make();
    const cfg: TrainConfig = { epochs: 2, batchSize: 4, optimizer: 'adam', lr: 3e-3, loss: 'ce+dice', seed: 9, weightDecay: 1e-3 };
    const ref = await withEngine('ops', () => trainLocal(a, data, cfg));
    const got = await withEngine(undefined, () => trainLocal(b, data, cfg));
    expect(compiledUNet(b).runs).toBe(got.steps);
    expect(got.steps).toBe(6);
    close('loss curve', got.lossCurve, ref.lossCurve, 1e-4);
    const wa = weights(a);
    for (const [name, w] of weights(b)) close(name, w, wa.get(name)!, 1e-3);
  });

  it('predict and predictProbs: same probabilities and labels', async () => {
    const u = make();
    await trainLocal(u, data, { epochs: 1, batchSize: 5, optimizer: 'adam', lr: 1e-2, loss: 'ce', seed: 1 });
    const refP = await withEngine('ops', () => predictProbs(u, data.images, data.n, 16, 16, 1, 3));
    const refL = await withEngine('ops', () => predict(u, data.images, data.n, 16, 16, 1, 3));
    close('probabilities', predictProbs(u, data.images, data.n, 16, 16, 1, 3), refP, 1e-4);
    const labels = predict(u, data.images, data.n, 16, 16, 1, 3);
    let differ = 0;
    for (let i = 0; i < labels.length; i++) if (labels[i] !== refL[i]) differ++;
    expect(differ).toBeLessThanOrEqual(Math.ceil(labels.length * 1e-3));  // only exact near-ties may flip
  });

  it('TENT (entropy, Adam on BN gamma/beta) and AdaBN: same losses, parameters and running statistics', async () => {
    const a = make();
    const b = make();
    const target = { n: data.n, height: 16, width: 16, channels: 1, images: data.images.map((v) => 0.5 * v + 0.3), spacing: [1, 1] as const, caseIds: data.caseIds };
    const ref = await withEngine('ops', () => adaptTent(a, target, { lr: 1e-2, epochs: 2, batchSize: 4, seed: 2 }));
    const runsBefore = compiledUNet(b).runs;
    const got = adaptTent(b, target, { lr: 1e-2, epochs: 2, batchSize: 4, seed: 2 });
    expect(compiledUNet(b).runs - runsBefore).toBe(got.steps + 3);  // TENT steps + the AdaBN pass's 3 batches
    close('TENT losses', got.losses, ref.losses, 1e-4);
    const wa = weights(a);
    for (const [name, w] of weights(b)) close(name, w, wa.get(name)!, 1e-3);
    await withEngine('ops', () => adaptAdaBN(a, target, { batchSize: 3 }));
    adaptAdaBN(b, target, { batchSize: 3 });
    const wa2 = weights(a);
    for (const [name, w] of weights(b)) if (name.endsWith('.mean') || name.endsWith('.var')) close(name, w, wa2.get(name)!, 1e-4);
  });
});
