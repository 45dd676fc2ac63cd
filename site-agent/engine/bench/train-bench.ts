/**
 * Training-step benchmark: trains the reference U-Net (or, with model 'unet', the product U-Net) (64x64x1, base 16, depth 2, BN, 4 classes,
 * batch 8 by default) for a few warm-up and timed steps on the selected backend, then ONE step on the
 * pure-JS cpu backend as the baseline, and reports ms/step, speed-up, achieved GFLOP/s and peak RSS.
 */
import * as tf from '@tensorflow/tfjs-core';
import { initEngine } from '../select-backend.ts';
import {
  REFERENCE_CONFIG,
  createReferenceParams,
  randomBatch,
  referenceTrainStep,
  trainStepFlops,
  type ReferenceUNetConfig,
} from './reference-unet.ts';
import { EngineError } from '../errors.ts';

export interface TrainBenchOptions {
  warmup?: number;
  steps?: number;
  batch?: number;
  /** Image height = width. */
  size?: number;
  /** Run the one-step pure-JS cpu baseline (slow: tens of seconds). Default true. */
  cpuBaseline?: boolean;
  /** Force a backend (else FEDSFDA_BACKEND / automatic selection). */
  backend?: string;
  config?: ReferenceUNetConfig;
  /**
   * 'reference' (default): the engine's plain-ops U-Net with nearest upsampling (~5.5 GFLOP/step at the
   * defaults, the reference) and plain SGD. 'unet': the product model (site-agent/model createUNet,
   * transposed-conv upsampling) with site-agent/train's cross-entropy and SGD-momentum optimizer.
   */
  model?: 'reference' | 'unet';
  /** Reference model only: batch norm via the engine's fused batchNormTrain instead of tf ops. */
  fusedBn?: boolean;
  /** Called after each timed step (progress output). */
  onStep?: (phase: 'warmup' | 'timed' | 'cpu', index: number, ms: number) => void;
  /** After the timed steps, run one more step under tf.profile and report per-kernel time (adds `kernelProfile`). */
  profile?: boolean;
}

export interface KernelTime {
  kernel: string;
  ms: number;
  calls: number;
}

export interface TrainBenchResult {
  backend: string;
  msPerStep: number;
  cpuBaselineMsPerStep: number | null;
  speedupVsCpu: number | null;
  gflops: number;
  peakRssMb: number;
  // Context (not part of the required keys).
  model: string;
  batch: number;
  size: number;
  warmup: number;
  steps: number;
  flopsPerStep: number;
  threads: number;
  /** Loss of the first step on the selected backend and on cpu, from the same weights and batch. */
  firstLoss: number;
  cpuFirstLoss: number | null;
  /** Per-kernel time of one profiled step on the selected backend, largest first (only with `profile`). */
  kernelProfile?: KernelTime[];
}

/** Runs one step under tf.profile and sums kernelTimeMs per kernel name. */
async function profileStep(stepper: Stepper): Promise<KernelTime[]> {
  const info = await tf.profile(() => {
    stepper.step();
  });
  const agg = new Map<string, KernelTime>();
  for (const k of info.kernels) {
    const a = agg.get(k.name) ?? { kernel: k.name, ms: 0, calls: 0 };
    a.ms += Number(k.kernelTimeMs);
    a.calls++;
    agg.set(k.name, a);
  }
  return [...agg.values()].map((a) => ({ ...a, ms: round(a.ms, 1) })).sort((a, b) => b.ms - a.ms);
}

function checkInt(name: string, v: number, min: number): number {
  if (!Number.isInteger(v) || v < min) throw new EngineError('BAD_ARGUMENT', `${name} must be an integer >= ${min}, got ${v}`);
  return v;
}

interface Stepper {
  step(): number;
  dispose(): void;
}

/** Fresh seeded weights + one fixed batch on the active backend; step() runs one SGD step, returns the loss. */
async function makeStepper(model: 'reference' | 'unet', c: ReferenceUNetConfig, batch: number, size: number): Promise<Stepper> {
  const { x, y } = randomBatch(c, batch, size, size, 99);
  if (model === 'reference') {
    const params = createReferenceParams(c, 1234);
    return {
      step: () => referenceTrainStep(params, c, x, y, 0.01),  // reads the loss: the step is complete
      dispose: () => tf.dispose([x, y, ...params.values()]),
    };
  }
  // Imported lazily: the model layer imports the engine, so a static import would be a cycle.
  const { createUNet } = await import('../../model/index.ts');
  const { createOptimizer, crossEntropyLoss } = await import('../../train/index.ts');
  const unet = createUNet({ inChannels: c.inChannels, numClasses: c.numClasses, baseChannels: c.baseChannels, depth: c.depth }, 1234);
  const opt = createOptimizer({ kind: 'sgd', lr: 0.01, momentum: 0.9 });
  const vars = [...unet.trainable.values()];
  return {
    step: () => opt.step(() => tf.tidy(() => crossEntropyLoss(unet.forward(x, { bn: 'batch', collectStats: false }).logits, y)), vars),
    dispose: () => {
      opt.dispose();
      unet.dispose();
      tf.dispose([x, y]);
    },
  };
}

/** Times `steps` training steps (after `warmup` untimed ones) from fresh seeded weights on the active backend. */
async function timeSteps(model: 'reference' | 'unet', c: ReferenceUNetConfig, batch: number, size: number, warmup: number, steps: number, phase: 'timed' | 'cpu', onStep?: TrainBenchOptions['onStep'], profile = false): Promise<{ msPerStep: number; firstLoss: number; kernelProfile?: KernelTime[] }> {
  const stepper = await makeStepper(model, c, batch, size);
  let firstLoss = NaN;
  try {
    for (let i = 0; i < warmup; i++) {
      const t0 = performance.now();
      const loss = stepper.step();
      if (i === 0) firstLoss = loss;
      onStep?.('warmup', i, performance.now() - t0);
    }
    let total = 0;
    for (let i = 0; i < steps; i++) {
      const t0 = performance.now();
      const loss = stepper.step();
      const ms = performance.now() - t0;
      if (warmup === 0 && i === 0) firstLoss = loss;
      total += ms;
      onStep?.(phase, i, ms);
    }
    const msPerStep = total / steps;
    return profile ? { msPerStep, firstLoss, kernelProfile: await profileStep(stepper) } : { msPerStep, firstLoss };
  } finally {
    stepper.dispose();
  }
}

export async function runTrainBench(opts: TrainBenchOptions = {}): Promise<TrainBenchResult> {
  const warmup = checkInt('warmup', opts.warmup ?? 2, 0);
  const steps = checkInt('steps', opts.steps ?? 5, 1);
  const batch = checkInt('batch', opts.batch ?? 8, 1);
  const model = opts.model ?? 'reference';
  if (model !== 'reference' && model !== 'unet') throw new EngineError('BAD_ARGUMENT', `model must be 'reference' or 'unet', got ${String(model)}`);
  const base = opts.config ?? REFERENCE_CONFIG;
  // The product U-Net upsamples with 2x2 transposed convs; count its FLOPs with the matching spec list.
  if (opts.fusedBn && model !== 'reference') throw new EngineError('BAD_ARGUMENT', 'fusedBn applies to the reference model only');
  const c: ReferenceUNetConfig = model === 'unet' ? { ...base, upsample: 'transpose' } : { ...base, bn: opts.fusedBn ? 'fused' : (base.bn ?? 'ops') };
  const size = checkInt('size', opts.size ?? 64, 2 ** c.depth);
  if (size % 2 ** c.depth !== 0) throw new EngineError('BAD_ARGUMENT', `size ${size} must be divisible by 2^depth = ${2 ** c.depth}`);
  const info = await initEngine(opts.backend !== undefined ? { backend: opts.backend } : {});
  const flops = trainStepFlops(c, batch, size, size);

  const sel = await timeSteps(model, c, batch, size, warmup, steps, 'timed', opts.onStep, opts.profile ?? false);

  let cpuMs: number | null = null;
  let cpuLoss: number | null = null;
  if (opts.cpuBaseline ?? true) {
    const active = tf.getBackend();
    await import('@tensorflow/tfjs-backend-cpu');
    await tf.setBackend('cpu');
    try {
      const r = await timeSteps(model, c, batch, size, 0, 1, 'cpu', opts.onStep);
      cpuMs = r.msPerStep;
      cpuLoss = r.firstLoss;
    } finally {
      await tf.setBackend(active);
    }
  }
  // maxRSS is in kilobytes (Node docs: process.resourceUsage()).
  const peakRssMb = process.resourceUsage().maxRSS / 1024;
  return {
    backend: info.backend,
    msPerStep: round(sel.msPerStep, 1),
    cpuBaselineMsPerStep: cpuMs === null ? null : round(cpuMs, 1),
    speedupVsCpu: cpuMs === null ? null : round(cpuMs / sel.msPerStep, 1),
    gflops: round(flops / (sel.msPerStep / 1000) / 1e9, 2),
    peakRssMb: round(peakRssMb, 1),
    model: `${model === 'unet' ? 'site-agent/model unet' : 'reference-unet'}(in=${c.inChannels},classes=${c.numClasses},base=${c.baseChannels},depth=${c.depth},bn${c.bn === 'fused' ? '-fused' : ''},${c.upsample ?? 'nearest'})`,
    batch,
    size,
    warmup,
    steps,
    flopsPerStep: flops,
    threads: info.threads,
    firstLoss: round(sel.firstLoss, 6),
    cpuFirstLoss: cpuLoss === null ? null : round(cpuLoss, 6),
    ...(sel.kernelProfile ? { kernelProfile: sel.kernelProfile } : {}),
  };
}

function round(v: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(v * f) / f;
}
