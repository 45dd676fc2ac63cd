/**
 * Training-step benchmark: trains the reference U-Net (or, with model 'unet', the product U-Net) (64x64x1,
 * base 16, depth 2, BN, 4 classes, batch 8 by default) for a few warm-up and timed steps on the selected
 * backend and engine path (compiled plan or op by op), in the same run the other engine path and the same
 * network in PyTorch (when python3-torch is installed), then ONE step on the pure-JS cpu backend as the
 * baseline; reports ms/step, the ratios, achieved GFLOP/s, peak RSS and the load average around the run.
 */
import * as tf from '@tensorflow/tfjs-core';
import { loadavg } from 'node:os';
import { initEngine } from '../select-backend.ts';
import { REFERENCE_CONFIG, trainStepFlops, type ReferenceUNetConfig } from './reference-unet.ts';
import { EngineError } from '../errors.ts';
import { BENCH_TRAINING, makeStepper, type BenchEngine, type BenchModel, type Stepper } from './steppers.ts';
import { runPytorchStep } from './pytorch-baseline.ts';
import { plansEnabled } from '../plan/unet-binding.ts';

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
  /** Engine path timed for msPerStep. Default: 'plan' where compiled plans run (fedsfda-native), else 'ops'. */
  engine?: BenchEngine;
  /** Also time the other engine path in the same run (opsMsPerStep / planMsPerStep). Default true where plans run. */
  compare?: boolean;
  /** Also time the same network in PyTorch in the same run (python3-torch). Default true. */
  pytorch?: boolean;
}

export interface KernelTime {
  kernel: string;
  ms: number;
  /** Compiled plans: CPU time of all threads (load-independent work). */
  cpuMs?: number;
  calls: number;
}

export interface TrainBenchResult {
  backend: string;
  /** Engine path of msPerStep. */
  engine: BenchEngine;
  msPerStep: number;
  /** The op-by-op path and the compiled plan, each when measured in this run. */
  opsMsPerStep: number | null;
  planMsPerStep: number | null;
  /** opsMsPerStep / planMsPerStep. */
  planSpeedup: number | null;
  /** Process CPU ms per step of each path when measured, and their ratio ops / plan (the work saved, little load-dependent). */
  opsCpuMsPerStep: number | null;
  planCpuMsPerStep: number | null;
  planCpuSpeedup: number | null;
  /** The same network, batch, loss and optimizer in PyTorch on the same thread count, this run. */
  pytorchMsPerStep: number | null;
  /** msPerStep / pytorchMsPerStep. */
  ratioVsPytorch: number | null;
  /**
   * Fastest timed step of each (ms) and their ratio: on a shared machine the step least disturbed by other
   * processes is the better estimate of each engine's own speed than the mean.
   */
  bestMsPerStep: number;
  pytorchBestMsPerStep: number | null;
  bestRatioVsPytorch: number | null;
  /**
   * Process CPU time per timed step (all threads) of the selected path and of PyTorch, and their ratio: the work
   * each does, which the load barely changes. PyTorch's figure includes its OpenMP threads' spin-waiting, so at
   * more than one thread it overstates PyTorch's work; with FEDSFDA_THREADS=1 both run one thread and the ratio
   * compares the work alone.
   */
  cpuMsPerStep: number;
  pytorchCpuMsPerStep: number | null;
  cpuRatioVsPytorch: number | null;
  /** torch version and threads, or why PyTorch was not measured. */
  pytorch: string;
  /** 1-minute load average before and after the run (the machine is shared). */
  loadAvg: [number, number];
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
  /** First loss of the other engine path (same weights and batch): the two paths agree. */
  otherFirstLoss: number | null;
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

/** Times `steps` training steps (after `warmup` untimed ones) from fresh seeded weights on the active backend. */
interface StepTimes {
  msPerStep: number;
  bestMsPerStep: number;
  /** Process CPU time (user + system, all threads) per timed step. */
  cpuMsPerStep: number;
  firstLoss: number;
  kernelProfile?: KernelTime[];
}

async function timeSteps(model: BenchModel, engine: BenchEngine, c: ReferenceUNetConfig, batch: number, size: number, warmup: number, steps: number, phase: 'timed' | 'cpu', onStep?: TrainBenchOptions['onStep'], profile = false): Promise<StepTimes> {
  const stepper = await makeStepper(model, engine, c, batch, size);
  let firstLoss = NaN;
  try {
    for (let i = 0; i < warmup; i++) {
      const t0 = performance.now();
      const loss = stepper.step();
      if (i === 0) firstLoss = loss;
      onStep?.('warmup', i, performance.now() - t0);
    }
    let total = 0;
    let best = Infinity;
    const cpu0 = process.cpuUsage();
    for (let i = 0; i < steps; i++) {
      const t0 = performance.now();
      const loss = stepper.step();
      const ms = performance.now() - t0;
      if (warmup === 0 && i === 0) firstLoss = loss;
      total += ms;
      best = Math.min(best, ms);
      onStep?.(phase, i, ms);
    }
    // process.cpuUsage() is in microseconds, all threads of the process (the native pool included).
    const cpu = process.cpuUsage(cpu0);
    const t: StepTimes = { msPerStep: total / steps, bestMsPerStep: best, cpuMsPerStep: (cpu.user + cpu.system) / 1000 / steps, firstLoss };
    if (!profile) return t;
    if (stepper.opProfile) {
      stepper.step();
      return { ...t, kernelProfile: stepper.opProfile().map((p) => ({ kernel: `plan:${p.op}`, ms: Math.round(p.ms * 10) / 10, cpuMs: Math.round(p.cpuMs * 10) / 10, calls: p.calls })) };
    }
    return { ...t, kernelProfile: await profileStep(stepper) };
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
  const load0 = loadavg()[0];
  const info = await initEngine(opts.backend !== undefined ? { backend: opts.backend } : {});
  const canPlan = plansEnabled() || (opts.engine === 'plan' && info.backend === 'fedsfda-native');
  const engine: BenchEngine = opts.engine ?? (canPlan ? 'plan' : 'ops');
  if (engine === 'plan' && !canPlan) throw new EngineError('BAD_ARGUMENT', `engine 'plan' needs the fedsfda-native backend (active: ${info.backend})`);
  const other: BenchEngine | null = (opts.compare ?? canPlan) && canPlan ? (engine === 'plan' ? 'ops' : 'plan') : null;
  const flops = trainStepFlops(c, batch, size, size);

  const sel = await timeSteps(model, engine, c, batch, size, warmup, steps, 'timed', opts.onStep, opts.profile ?? false);
  const t = BENCH_TRAINING[model];
  const torch = (opts.pytorch ?? true)
    ? await runPytorchStep({ model, inChannels: c.inChannels, numClasses: c.numClasses, baseChannels: c.baseChannels, depth: c.depth, batch, size, loss: t.loss, optimizer: t.optimizer === 'adam' ? 'adam' : t.momentum > 0 ? 'momentum' : 'sgd', lr: t.lr, warmup, steps, threads: info.threads })
    : { ok: false as const, reason: 'not requested' };
  const alt = other ? await timeSteps(model, other, c, batch, size, warmup, steps, 'timed', opts.onStep) : null;

  let cpuMs: number | null = null;
  let cpuLoss: number | null = null;
  if (opts.cpuBaseline ?? true) {
    const active = tf.getBackend();
    await import('@tensorflow/tfjs-backend-cpu');
    await tf.setBackend('cpu');
    try {
      const r = await timeSteps(model, 'ops', c, batch, size, 0, 1, 'cpu', opts.onStep);
      cpuMs = r.msPerStep;
      cpuLoss = r.firstLoss;
    } finally {
      await tf.setBackend(active);
    }
  }
  // maxRSS is in kilobytes (Node docs: process.resourceUsage()).
  const peakRssMb = process.resourceUsage().maxRSS / 1024;
  const ms = { [engine]: sel.msPerStep, ...(alt && other ? { [other]: alt.msPerStep } : {}) } as Partial<Record<BenchEngine, number>>;
  const workMs = { [engine]: sel.cpuMsPerStep, ...(alt && other ? { [other]: alt.cpuMsPerStep } : {}) } as Partial<Record<BenchEngine, number>>;
  const kernelProfile = sel.kernelProfile ?? alt?.kernelProfile;
  return {
    backend: info.backend,
    engine,
    msPerStep: round(sel.msPerStep, 1),
    opsMsPerStep: ms.ops === undefined ? null : round(ms.ops, 1),
    planMsPerStep: ms.plan === undefined ? null : round(ms.plan, 1),
    planSpeedup: ms.ops === undefined || ms.plan === undefined ? null : round(ms.ops / ms.plan, 2),
    opsCpuMsPerStep: workMs.ops === undefined ? null : round(workMs.ops, 1),
    planCpuMsPerStep: workMs.plan === undefined ? null : round(workMs.plan, 1),
    planCpuSpeedup: workMs.ops === undefined || workMs.plan === undefined ? null : round(workMs.ops / workMs.plan, 2),
    pytorchMsPerStep: torch.ok ? round(torch.msPerStep, 1) : null,
    ratioVsPytorch: torch.ok ? round(sel.msPerStep / torch.msPerStep, 2) : null,
    bestMsPerStep: round(sel.bestMsPerStep, 1),
    pytorchBestMsPerStep: torch.ok ? round(torch.bestMsPerStep, 1) : null,
    bestRatioVsPytorch: torch.ok ? round(sel.bestMsPerStep / torch.bestMsPerStep, 2) : null,
    cpuMsPerStep: round(sel.cpuMsPerStep, 1),
    pytorchCpuMsPerStep: torch.ok ? round(torch.cpuMsPerStep, 1) : null,
    cpuRatioVsPytorch: torch.ok ? round(sel.cpuMsPerStep / torch.cpuMsPerStep, 2) : null,
    pytorch: torch.ok ? `torch ${torch.torch}, ${torch.threads} threads (${torch.python})` : torch.reason,
    loadAvg: [round(load0, 2), round(loadavg()[0], 2)],
    cpuBaselineMsPerStep: cpuMs === null ? null : round(cpuMs, 1),
    speedupVsCpu: cpuMs === null ? null : round(cpuMs / sel.msPerStep, 1),
    gflops: round(flops / (sel.msPerStep / 1000) / 1e9, 2),
    peakRssMb: round(peakRssMb, 1),
    model: `${model === 'unet' ? 'site-agent/model unet' : 'reference-unet'}(in=${c.inChannels},classes=${c.numClasses},base=${c.baseChannels},depth=${c.depth},bn${c.bn === 'fused' ? '-fused' : ''},${c.upsample ?? 'nearest'}; ${t.optimizer} lr ${t.lr}, ${t.loss})`,
    batch,
    size,
    warmup,
    steps,
    flopsPerStep: flops,
    threads: info.threads,
    firstLoss: round(sel.firstLoss, 6),
    otherFirstLoss: alt ? round(alt.firstLoss, 6) : null,
    cpuFirstLoss: cpuLoss === null ? null : round(cpuLoss, 6),
    ...(kernelProfile ? { kernelProfile } : {}),
  };
}

function round(v: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(v * f) / f;
}
