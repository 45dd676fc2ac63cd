import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ModelError } from './model-error.ts';
import { loadModel, MODEL_JSON, saveModel, WEIGHTS_BIN } from './model-io.ts';
import { createUNet, type UNet } from './unet.ts';

let dir: string;
let unet: UNet;

async function expectLoadError(code: string, text?: RegExp): Promise<void> {
  const err = await loadModel(dir).then(
    (m) => {
      m.dispose();
      return null;
    },
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ModelError);
  expect((err as ModelError).code).toBe(code);
  if (text) expect((err as ModelError).message).toMatch(text);
}

async function editManifest(f: (m: Record<string, unknown>) => void): Promise<void> {
  const m = JSON.parse(await readFile(join(dir, MODEL_JSON), 'utf8')) as Record<string, unknown>;
  f(m);
  await writeFile(join(dir, MODEL_JSON), JSON.stringify(m));
}

beforeAll(async () => {
  await tf.setBackend('cpu');
});
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'fedsfda-model-'));
  unet = createUNet({ inChannels: 2, numClasses: 4, baseChannels: 2, depth: 1, inputSize: [8, 8] }, 11);
  // Non-trivial BN statistics so that the round trip covers them too.
  tf.tidy(() => {
    const out = unet.forward(tf.randomNormal([2, 8, 8, 2], 0, 1, 'float32', 1) as tf.Tensor4D, { bn: 'batch' });
    unet.updateRunningStats(out.batchStats, 0.5);
  });
  await saveModel(unet, dir);
});
afterEach(async () => {
  unet.dispose();
  await rm(dir, { recursive: true, force: true });
});

describe('saveModel / loadModel', () => {
  it('round-trips config, every weight and BN statistic bit-exactly', async () => {
    const loaded = await loadModel(dir);
    try {
      expect(loaded.config).toEqual(unet.config);
      expect(loaded.getWeights()).toEqual(unet.getWeights());
      const m = JSON.parse(await readFile(join(dir, MODEL_JSON), 'utf8')) as { tensors: { name: string; offset: number }[] };
      expect(m.tensors.map((t) => t.name)).toEqual(unet.paramNames);
      expect((await readFile(join(dir, WEIGHTS_BIN))).length).toBe(
        unet.getWeights().reduce((s, t) => s + 4 * t.data.length, 0),
      );
      tf.tidy(() => {
        const x = tf.randomNormal([1, 8, 8, 2], 0, 1, 'float32', 2) as tf.Tensor4D;
        expect(loaded.forward(x, { bn: 'running' }).logits.dataSync()).toEqual(unet.forward(x, { bn: 'running' }).logits.dataSync());
      });
    } finally {
      loaded.dispose();
    }
  });

  it('missing directory or file -> MODEL_FILE_MISSING', async () => {
    await rm(join(dir, WEIGHTS_BIN));
    await expectLoadError('MODEL_FILE_MISSING', /weights\.bin/);
    await rm(dir, { recursive: true });
    await expectLoadError('MODEL_FILE_MISSING', /model\.json/);
  });

  it('truncated weights -> MODEL_FILE_TRUNCATED', async () => {
    const bin = await readFile(join(dir, WEIGHTS_BIN));
    await writeFile(join(dir, WEIGHTS_BIN), bin.subarray(0, bin.length - 4));
    await expectLoadError('MODEL_FILE_TRUNCATED', /expects/);
  });

  it('a flipped byte -> MODEL_FILE_CORRUPT (checksum)', async () => {
    const bin = await readFile(join(dir, WEIGHTS_BIN));
    bin[10] ^= 0xff;
    await writeFile(join(dir, WEIGHTS_BIN), bin);
    await expectLoadError('MODEL_FILE_CORRUPT', /checksum/);
  });

  it('bad JSON, bad schema, bad config, bad offsets -> MODEL_FILE_CORRUPT', async () => {
    await writeFile(join(dir, MODEL_JSON), '{ not json');
    await expectLoadError('MODEL_FILE_CORRUPT', /not valid JSON/);
    await saveModel(unet, dir);
    await editManifest((m) => delete m.sha256);
    await expectLoadError('MODEL_FILE_CORRUPT', /sha256/);
    await saveModel(unet, dir);
    await editManifest((m) => ((m.config as Record<string, unknown>).depth = 0));
    await expectLoadError('MODEL_FILE_CORRUPT', /config\.depth/);
    await saveModel(unet, dir);
    await editManifest((m) => ((m.tensors as { offset: number }[])[1].offset += 4));
    await expectLoadError('MODEL_FILE_CORRUPT', /offset/);
  });

  it('another format version -> MODEL_VERSION', async () => {
    await editManifest((m) => (m.version = 99));
    await expectLoadError('MODEL_VERSION', /99/);
  });

  it('weights that do not fit the architecture -> WEIGHT_MISMATCH / UNKNOWN_PARAMETER', async () => {
    await editManifest((m) => ((m.config as Record<string, unknown>).baseChannels = 4));
    await expectLoadError('WEIGHT_MISMATCH', /enc1\.conv1\.w/);
    await saveModel(unet, dir);
    await editManifest((m) => ((m.tensors as { name: string }[])[0].name = 'enc7.conv1.w'));
    await expectLoadError('UNKNOWN_PARAMETER', /enc7\.conv1\.w/);
  });
});
