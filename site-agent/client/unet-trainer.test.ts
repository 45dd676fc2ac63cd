import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-core/dist/register_all_gradients';
import { beforeAll, describe, expect, it } from 'vitest';
import { makeNestedBoxes, TOY_CONFIG, TOY_SIZE } from '../adapt/toy-shift-fixture.ts';
import { createUNet, ModelError } from '../model/index.ts';
import { UNetTrainer } from './unet-trainer.ts';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

function trainer(augment?: ConstructorParameters<typeof UNetTrainer>[0]['augment']): UNetTrainer {
  return new UNetTrainer({
    ...(augment ? { augment } : {}),
    train: makeNestedBoxes(12, TOY_SIZE, 1),
    val: makeNestedBoxes(6, TOY_SIZE, 2),
    batchSize: 4,
    optimizer: 'adam',
    loss: 'ce+dice',
    seed: 5,
  });
}

describe('UNetTrainer', () => {
  it('personalize fine-tunes the last evaluated global model on local data and scores it', async () => {
    const t = trainer();
    const global = createUNet(TOY_CONFIG, 9).getWeights();
    const before = (await t.evaluate(global)).metrics.dice ?? 0;
    const after = await t.personalize({ epochs: 6, lr: 0.01 });
    expect(after.dice).toBeGreaterThan(before + 0.1);
    expect(after.volumes).toBe(6);
    await expect(t.personalize({ epochs: 0, lr: 0.01 })).rejects.toBeInstanceOf(ModelError);
  });

  it('class-histogram statistics count the training labels; unknown statistics are a typed error', async () => {
    const t = trainer();
    const train = makeNestedBoxes(12, TOY_SIZE, 1);
    const counts = [0, 0, 0];
    for (const l of train.labels) counts[l]++;
    const global = createUNet(TOY_CONFIG, 9).getWeights();
    const v = await t.statistics(global, { name: 'class-histogram', config: { scale: 1e-4 } });
    expect(Array.from(v['hist/pixels'], (x) => Math.round(x * 1e4))).toEqual(counts);
    expect(Array.from(v['hist/sites'])).toEqual([1]);
    await expect(t.statistics(global, { name: 'no-such-statistic' })).rejects.toBeInstanceOf(ModelError);
  });

  it('augment: each fit trains on the hook copy for that round; statistics keep the plain split', async () => {
    const rounds: number[] = [];
    const negated = trainer((train, round) => {
      rounds.push(round);
      return { ...train, images: train.images.map((v) => -v) };
    });
    const plain = trainer();
    const global = createUNet(TOY_CONFIG, 9).getWeights();
    const req = { round: 3, localEpochs: 1, lr: 0.01 };
    const a = await negated.fit(global, req);
    const b = await plain.fit(global, req);
    expect(rounds).toEqual([3]);
    const conv = (w: typeof a.weights) => Array.from(w.find((t) => t.name.includes('conv'))?.data ?? []);
    expect(conv(a.weights)).not.toEqual(conv(b.weights));
    const sa = await negated.statistics(global, { name: 'source-stats' });
    const sb = await plain.statistics(global, { name: 'source-stats' });
    expect(Object.keys(sa)).toEqual(Object.keys(sb));
    for (const k of Object.keys(sa)) expect(Array.from(sa[k])).toEqual(Array.from(sb[k]));
    expect(rounds).toEqual([3]);
  });
});
