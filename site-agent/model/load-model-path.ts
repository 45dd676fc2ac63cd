/**
 * A model from either of the two forms a federation produces: a model folder (`saveModel`: model.json with the
 * config and a checksummed weights file) or the coordinator's `final-weights.fsws` (the wire's tensor codec;
 * the coordinator never loads tfjs, so it writes weights only and the U-Net config is read off their shapes).
 */
import { readFile, stat } from 'node:fs/promises';
import { decodeWeightSet } from '../../protocol/index.ts';
import { inferUNetConfig } from './infer-config.ts';
import { ModelError } from './model-error.ts';
import { loadModel } from './model-io.ts';
import { createUNet, type UNet } from './unet.ts';

export async function loadModelFromPath(path: string): Promise<UNet> {
  let isDir: boolean;
  try {
    isDir = (await stat(path)).isDirectory();
  } catch (e) {
    throw new ModelError('MODEL_FILE_MISSING', `no model at ${path}: ${(e as Error).message}`);
  }
  if (isDir) return loadModel(path);
  let weights;
  try {
    weights = decodeWeightSet(new Uint8Array(await readFile(path)));
  } catch (e) {
    throw new ModelError('MODEL_FILE_CORRUPT', `${path} is neither a model folder nor an encoded weight set: ${(e as Error).message}`);
  }
  // Seed 0 only fills the variables before setWeights overwrites every one of them (it checks names and shapes).
  const unet = createUNet(inferUNetConfig(weights), 0);
  try {
    unet.setWeights(weights);
  } catch (e) {
    unet.dispose();
    throw e;
  }
  return unet;
}
