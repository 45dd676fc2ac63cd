/**
 * site-agent/model's U-Net on compiled plans: one CompiledUNet per model object (cached), the switch that
 * decides whether the plan path is used, and the inference / AdaBN passes built on it.
 * `FEDSFDA_ENGINE=ops` forces the op-by-op tfjs path (the reference); the default is the plan path whenever
 * the active backend is fedsfda-native.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { UNet } from '../../model/index.ts';
import { EngineError } from '../errors.ts';
import { loadNativeAddon } from '../native-addon.ts';
import { NATIVE_BACKEND } from '../native-backend.ts';
import { CompiledUNet, emptyHyper } from './compiled-unet.ts';
import { Hyper } from './plan-ops.ts';
import { productUNetFamily } from './unet-family.ts';

export type EngineMode = 'plan' | 'ops';

/** FEDSFDA_ENGINE: 'plan' (default) or 'ops'. */
export function engineMode(): EngineMode {
  const v = (process.env.FEDSFDA_ENGINE ?? 'plan').trim().toLowerCase();
  if (v === '' || v === 'plan') return 'plan';
  if (v === 'ops') return 'ops';
  throw new EngineError('BAD_ARGUMENT', `FEDSFDA_ENGINE must be 'plan' or 'ops', got "${process.env.FEDSFDA_ENGINE}"`);
}

/** Plans cover the batch-norm U-Net family; a GroupNorm U-Net (model normalization 'group') runs op by op. */
export function planSupports(unet: UNet): boolean {
  return (unet.config.normalization ?? 'batch') === 'batch';
}

/**
 * Whether model code should run on compiled plans: fedsfda-native active, addon with plans, not FEDSFDA_ENGINE=ops,
 * and (given a model) a model the plans cover.
 */
export function plansEnabled(unet?: UNet): boolean {
  if (engineMode() === 'ops' || tf.getBackend() !== NATIVE_BACKEND) return false;
  if (unet !== undefined && !planSupports(unet)) return false;
  const load = loadNativeAddon();
  return load.ok && typeof load.addon.PlanNet === 'function';
}

const cache = new WeakMap<UNet, CompiledUNet>();

/** The model's CompiledUNet (created on first use, weights pulled from tfjs on every call). */
export function compiledUNet(unet: UNet): CompiledUNet {
  let c = cache.get(unet);
  if (c === undefined) {
    if (!planSupports(unet)) throw new EngineError('BAD_ARGUMENT', `compiled plan: only batch-norm U-Nets are planned, this one uses '${unet.config.normalization}' normalization`);
    const vars = new Map<string, tf.Variable>();
    for (const name of unet.paramNames) {
      const v = unet.trainable.get(name) ?? unet.bnStats.get(name);
      if (v === undefined) throw new EngineError('BAD_ARGUMENT', `compiled plan: model lists '${name}' but holds no such variable`);
      vars.set(name, v);
    }
    c = new CompiledUNet(productUNetFamily(unet.config), vars);
    cache.set(unet, c);
  } else {
    c.pull();
  }
  return c;
}

function batches(n: number, batchSize: number): [number, number][] {
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new EngineError('BAD_ARGUMENT', `batchSize must be a positive integer, got ${batchSize}`);
  const out: [number, number][] = [];
  for (let s = 0; s < n; s += batchSize) out.push([s, Math.min(batchSize, n - s)]);
  return out;
}

/**
 * Logits [n, h, w, K] with BN running statistics (inference), batch by batch; `emit` receives each batch's
 * logits (a fresh array) and its first slice index.
 */
export function planInferBatches(unet: UNet, images: Float32Array, n: number, h: number, w: number, batchSize: number, emit: (logits: Float32Array, first: number, count: number) => void): void {
  const c = compiledUNet(unet);
  const img = h * w * unet.config.inChannels;
  const hyper = emptyHyper();
  for (const [s, m] of batches(n, batchSize)) {
    const prog = c.program({ N: m, H: h, W: w }, { kind: 'infer' });
    prog.run(images.subarray(s * img, (s + m) * img), null, hyper);
    emit(prog.read(prog.plan.logits!), s, m);
  }
}

/**
 * AdaBN (Li et al., ICLR-W 2017, Alg. 1) as site-agent/adapt/adabn.ts computes it: each batch normalised with
 * its own moments, running statistics = example-weighted average of the batch moments (the first batch
 * replaces the source values). Batches in order; writes the statistics back to the model.
 */
export function planAdaBN(unet: UNet, images: Float32Array, n: number, h: number, w: number, batchSize: number): number {
  const c = compiledUNet(unet);
  const img = h * w * unet.config.inChannels;
  const hyper = emptyHyper();
  let seen = 0;
  let steps = 0;
  for (const [s, m] of batches(n, batchSize)) {
    hyper[Hyper.bnMomentum] = m / (seen + m);
    c.program({ N: m, H: h, W: w }, { kind: 'stats' }).run(images.subarray(s * img, (s + m) * img), null, hyper);
    seen += m;
    steps++;
  }
  c.push(unet.bnStats.keys());
  return steps;
}
