import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeWeightSet } from '../../protocol/tensor-codec.ts';
import { loadModelFromPath } from './load-model-path.ts';
import { ModelError } from './model-error.ts';
import { saveModel } from './model-io.ts';
import { createUNet } from './unet.ts';

let dir: string;
beforeAll(async () => {
  await tf.setBackend('cpu');
  dir = await mkdtemp(join(tmpdir(), 'fedsfda-load-path-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function errorOf(path: string): Promise<unknown> {
  return loadModelFromPath(path).then(
    (m) => {
      m.dispose();
      return null;
    },
    (e: unknown) => e,
  );
}

describe('loadModelFromPath', () => {
  it('loads a model folder and the coordinator weight file to the same config and weights', async () => {
    const config = { inChannels: 1, numClasses: 3, baseChannels: 4, depth: 2 };
    const unet = createUNet(config, 7);
    await saveModel(unet, join(dir, 'model'));
    await writeFile(join(dir, 'final-weights.fsws'), encodeWeightSet(unet.getWeights()));
    const fromDir = await loadModelFromPath(join(dir, 'model'));
    const fromFile = await loadModelFromPath(join(dir, 'final-weights.fsws'));
    expect(fromFile.config).toEqual(fromDir.config);
    expect(fromFile.config).toMatchObject(config);
    const a = fromDir.getWeights();
    const b = fromFile.getWeights();
    expect(b.map((t) => t.name)).toEqual(a.map((t) => t.name));
    b.forEach((t, i) => expect(Array.from(t.data)).toEqual(Array.from(a[i].data)));
    for (const m of [unet, fromDir, fromFile]) m.dispose();
  });

  it('names what is wrong with a missing path, a foreign file and a weight set that is not a U-Net', async () => {
    const missing = await errorOf(join(dir, 'nope.fsws'));
    expect(missing).toBeInstanceOf(ModelError);
    expect((missing as ModelError).code).toBe('MODEL_FILE_MISSING');
    await writeFile(join(dir, 'junk.fsws'), 'not a weight set');
    const junk = await errorOf(join(dir, 'junk.fsws'));
    expect((junk as ModelError).code).toBe('MODEL_FILE_CORRUPT');
    await writeFile(join(dir, 'other.fsws'), encodeWeightSet([{ name: 'w', shape: [2], data: Float32Array.of(1, 2) }]));
    expect(((await errorOf(join(dir, 'other.fsws'))) as ModelError).code).toBe('WEIGHT_MISMATCH');
  });
});
