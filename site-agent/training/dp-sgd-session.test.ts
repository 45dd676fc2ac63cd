import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-core/dist/register_all_gradients';
import { beforeAll, describe, expect, it } from 'vitest';
import { DP_SGD_METRIC, isPrivacyError, planDpSgd, sampledGaussianEpsilon, seededNoiseSource } from '../../protocol/privacy/index.ts';
import { createUNet } from '../model/index.ts';
import { UNetTrainer } from '../client/index.ts';
import { DpSgdSession } from './dp-sgd-session.ts';
import { makeSquaresDataset } from './squares-fixture.ts';

const GN = { inChannels: 1, numClasses: 2, baseChannels: 2, depth: 1, normalization: 'group' } as const;
const TRAIN = makeSquaresDataset(6, 8, 1);
const VAL = makeSquaresDataset(2, 8, 2);

beforeAll(async () => {
  await tf.setBackend('cpu');
});

function trainer(session: DpSgdSession): UNetTrainer {
  return new UNetTrainer({ model: GN, train: TRAIN, val: VAL, batchSize: 2, optimizer: 'adam', loss: 'ce', seed: 3, dpSgd: session });
}

describe('DP-SGD in the site trainer', () => {
  it("accounts every local step of every round in the site's ledger, as the accountant computes it, and reports it with the fit", async () => {
    const plan = planDpSgd({ clip: 1, noiseMultiplier: 1.5 }, { examples: TRAIN.n, batchSize: 2, plannedEpochs: 4 });
    const session = new DpSgdSession(plan, seededNoiseSource(7));
    const t = trainer(session);
    const global = createUNet(GN, 1).getWeights();
    const first = await t.fit(global, { round: 1, localEpochs: 1, lr: 1e-3 });
    const second = await t.fit(first.weights, { round: 2, localEpochs: 2, lr: 1e-3 });
    const steps = 3 * plan.stepsPerEpoch;
    expect(second.metrics[DP_SGD_METRIC.steps]).toBe(steps);
    expect(second.metrics[DP_SGD_METRIC.epsilon]).toBeCloseTo(
      sampledGaussianEpsilon({ samplingRate: plan.samplingRate, noiseMultiplier: 1.5, steps, delta: 1e-5 }).epsilon,
      12,
    );
    expect(first.metrics[DP_SGD_METRIC.epsilon]).toBeLessThan(second.metrics[DP_SGD_METRIC.epsilon]);
    expect(second.metrics[DP_SGD_METRIC.samplingRate]).toBe(1 / 3);
    expect(second.weights.some((w) => w.name === 'enc1.gn1.gamma')).toBe(true);
  });

  it('refuses a round that would take the site past its budget, before training', async () => {
    const plan = planDpSgd({ clip: 1, noiseMultiplier: 1, maxEpsilon: 6 }, { examples: TRAIN.n, batchSize: 2, plannedEpochs: 1 });
    const t = trainer(new DpSgdSession(plan, seededNoiseSource(8)));
    const global = createUNet(GN, 1).getWeights();
    await t.fit(global, { round: 1, localEpochs: 1, lr: 1e-3 });
    const err = await t.fit(global, { round: 2, localEpochs: 50, lr: 1e-3 }).catch((e: unknown) => e);
    expect(isPrivacyError(err, 'budget-exceeded')).toBe(true);
  });
});
