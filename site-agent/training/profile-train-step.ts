import * as tf from '@tensorflow/tfjs-core';
import type { SliceDataset } from '../data/index.ts';
import { createUNet, type UNetConfig } from '../model/index.ts';
import { Rng } from '../../protocol/common/index.ts';
import type { LossKind } from './losses.ts';
import { TrainError } from './train-error.ts';
import { trainLocal } from './train-local.ts';

export interface ProfileOptions {
  readonly config: UNetConfig;
  /** Image height = width. */
  readonly size: number;
  readonly batch: number;
  readonly warmup: number;
  readonly steps: number;
  readonly loss?: LossKind;
  readonly optimizer?: 'sgd' | 'adam';
  readonly seed?: number;
  /** Also run one step under tf.profile and list the kernels it hit (default true). */
  readonly kernels?: boolean;
}

export interface KernelUse {
  readonly name: string;
  readonly calls: number;
  /** Summed kernel time as reported by the backend (0 where the backend reports none). */
  readonly ms: number;
}

export interface ProfileResult {
  readonly backend: string;
  readonly config: UNetConfig;
  readonly size: number;
  readonly batch: number;
  /** Median wall time of the timed trainLocal steps (batching, forward, backward, update, BN running stats). */
  readonly msPerStepMedian: number;
  readonly msPerStep: number[];
  readonly kernels: KernelUse[];
}

/** Random images and labels (uniform classes): a timing workload, not a learning problem. */
function randomDataset(config: UNetConfig, n: number, size: number, seed: number): SliceDataset {
  const rng = new Rng(seed);
  const images = new Float32Array(n * size * size * config.inChannels);
  for (let i = 0; i < images.length; i++) images[i] = rng.normal();
  const labels = new Uint8Array(n * size * size);
  for (let i = 0; i < labels.length; i++) labels[i] = rng.int(config.numClasses);
  return {
    n,
    height: size,
    width: size,
    channels: config.inChannels,
    images,
    labels,
    numClasses: config.numClasses,
    spacing: [1, 1],
    caseIds: Array.from({ length: n }, (_, i) => `random-${i}`),
  };
}

/**
 * Times trainLocal steps of a U-Net on the active tfjs backend and lists the kernels one step runs, so that a
 * backend can be checked to cover (and accelerate) exactly those. Numbers depend on machine load.
 */
export async function profileTrainStep(opts: ProfileOptions): Promise<ProfileResult> {
  for (const [k, v] of [['size', opts.size], ['batch', opts.batch], ['steps', opts.steps]] as const) {
    if (!Number.isInteger(v) || v < 1) throw new TrainError('INVALID_CONFIG', `profileTrainStep: ${k} must be a positive integer, got ${v}`);
  }
  if (!Number.isInteger(opts.warmup) || opts.warmup < 0) {
    throw new TrainError('INVALID_CONFIG', `profileTrainStep: warmup must be a non-negative integer, got ${opts.warmup}`);
  }
  const seed = opts.seed ?? 0;
  const unet = createUNet(opts.config, seed);
  const data = randomDataset(unet.config, opts.batch, opts.size, seed);
  const base = {
    epochs: Number.MAX_SAFE_INTEGER,
    batchSize: opts.batch,
    optimizer: opts.optimizer ?? 'adam',
    lr: 1e-3,
    loss: opts.loss ?? 'ce+dice',
    seed,
  } as const;
  try {
    if (opts.warmup > 0) await trainLocal(unet, data, { ...base, maxSteps: opts.warmup });
    const times: number[] = [];
    let t = performance.now();
    await trainLocal(unet, data, {
      ...base,
      maxSteps: opts.steps,
      onStep: () => {
        const now = performance.now();
        times.push(now - t);
        t = now;
      },
    });
    let kernels: KernelUse[] = [];
    if (opts.kernels !== false) {
      const info = await tf.profile(async () => {
        await trainLocal(unet, data, { ...base, maxSteps: 1 });
      });
      const agg = new Map<string, { calls: number; ms: number }>();
      for (const k of info.kernels) {
        const a = agg.get(k.name) ?? { calls: 0, ms: 0 };
        a.calls++;
        a.ms += typeof k.kernelTimeMs === 'number' ? k.kernelTimeMs : 0;
        agg.set(k.name, a);
      }
      kernels = [...agg].map(([name, a]) => ({ name, ...a })).sort((x, y) => y.ms - x.ms || x.name.localeCompare(y.name));
    }
    const sorted = [...times].sort((a, b) => a - b);
    return {
      backend: tf.getBackend(),
      config: unet.config,
      size: opts.size,
      batch: opts.batch,
      msPerStepMedian: sorted[Math.floor(sorted.length / 2)],
      msPerStep: times,
      kernels,
    };
  } finally {
    unet.dispose();
  }
}
