import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-core/dist/register_all_gradients';
import { beforeAll, describe, expect, it } from 'vitest';
import { profileTrainStep } from './profile-train-step.ts';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

describe('profileTrainStep', () => {
  it('times the requested steps, lists the kernels of a step and leaks nothing', async () => {
    const start = tf.memory().numTensors;
    const r = await profileTrainStep({
      config: { inChannels: 1, numClasses: 3, baseChannels: 2, depth: 1 },
      size: 8,
      batch: 2,
      warmup: 0,
      steps: 2,
    });
    expect(r.backend).toBe('cpu');
    expect(r.msPerStep).toHaveLength(2);
    expect(r.msPerStepMedian).toBeGreaterThan(0);
    const names = r.kernels.map((k) => k.name);
    for (const k of ['Conv2D', 'Conv2DBackpropFilter', 'Conv2DBackpropInput', 'MaxPool', 'MaxPoolGrad', 'Relu', 'Concat']) {
      expect(names).toContain(k);
    }
    // 1 level + bottleneck + 1 decoder level, 2 convs each: 6 forward convs and 6 filter gradients, plus one
    // Conv2D for the input gradient of the transposed up-conv (and one filter gradient for its weight).
    expect(r.kernels.find((k) => k.name === 'Conv2D')?.calls).toBe(7);
    expect(r.kernels.find((k) => k.name === 'Conv2DBackpropFilter')?.calls).toBe(7);
    expect(tf.memory().numTensors).toBe(start);
  });

  it('rejects nonsense sizes', async () => {
    await expect(
      profileTrainStep({ config: { inChannels: 1, numClasses: 2, baseChannels: 2, depth: 1 }, size: 0, batch: 1, warmup: 0, steps: 1 }),
    ).rejects.toThrow(/size/);
  });
});
