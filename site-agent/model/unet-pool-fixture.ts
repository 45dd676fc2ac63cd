/**
 * For test files that build U-Nets on tfjs's `cpu` backend: `unetPool(config, seed)` selects the backend before the
 * file's tests and returns `make(config?, seed?)`, whose U-Nets are disposed after each test (no tensor outlives its
 * test). Call it once at the top level of the test file (it registers the file's beforeAll / afterEach hooks).
 */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { afterEach, beforeAll } from 'vitest';
import { createUNet, type UNet } from './unet.ts';
import type { UNetConfig } from './unet-config.ts';

export function unetPool(defaultConfig: UNetConfig, defaultSeed: number): (config?: UNetConfig, seed?: number) => UNet {
  let models: UNet[] = [];
  beforeAll(async () => {
    await tf.setBackend('cpu');
  });
  afterEach(() => {
    for (const m of models) m.dispose();
    models = [];
  });
  return (config = defaultConfig, seed = defaultSeed) => {
    const m = createUNet(config, seed);
    models.push(m);
    return m;
  };
}
