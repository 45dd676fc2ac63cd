/**
 * TENT adaptation benchmark (issue 16: "a TENT adaptation epoch at least 2x faster, same run"): one epoch of
 * site-agent/adapt's adaptTent (entropy steps on the BN affine parameters, then the AdaBN pass that re-estimates
 * the running statistics) on the product U-Net, timed on the compiled plan and on the op-by-op tfjs path
 * (FEDSFDA_ENGINE=ops, the path before plans) in the same process, from the same weights and target images.
 */
import { loadavg } from 'node:os';
import { initEngine } from '../select-backend.ts';
import { EngineError } from '../errors.ts';
import { REFERENCE_CONFIG } from './reference-unet.ts';
import type { BenchEngine } from './steppers.ts';

export interface TentBenchOptions {
  /** Target slices in the epoch. Default 64 (8 steps at batch 8). */
  slices?: number;
  batch?: number;
  /** Slice height = width. Default 64. */
  size?: number;
  backend?: string;
}

export interface TentEpochTime {
  engine: BenchEngine;
  /** Wall time of adaptTent (epoch + AdaBN pass). */
  ms: number;
  /** Process CPU time of the same (all threads). */
  cpuMs: number;
  steps: number;
  /** Compiled-plan runs the epoch made on this model (0 on the op-by-op path: it really ran op by op). */
  planRuns: number;
  firstLoss: number;
  lastLoss: number;
}

export interface TentBenchResult {
  backend: string;
  threads: number;
  model: string;
  slices: number;
  batch: number;
  size: number;
  /** Wall and CPU ms of one TENT epoch, compiled plan and op by op (null where plans do not run). */
  planEpochMs: number | null;
  planEpochCpuMs: number | null;
  opsEpochMs: number;
  opsEpochCpuMs: number;
  /** opsEpochMs / planEpochMs and the same for CPU time. */
  planSpeedup: number | null;
  planCpuSpeedup: number | null;
  runs: TentEpochTime[];
  /** 1-minute load average before and after. */
  loadAvg: [number, number];
}

function checkInt(name: string, v: number, min: number): number {
  if (!Number.isInteger(v) || v < min) throw new EngineError('BAD_ARGUMENT', `${name} must be an integer >= ${min}, got ${v}`);
  return v;
}

/** Deterministic target images in [0, 1) (a hashed pixel index: no RNG state shared with anything else). */
function targetImages(n: number, size: number): Float32Array {
  const out = new Float32Array(n * size * size);
  for (let i = 0; i < out.length; i++) {
    let h = Math.imul(i + 1, 0x9e3779b1);
    h ^= h >>> 15;
    h = Math.imul(h, 0x85ebca6b);
    h ^= h >>> 13;
    out[i] = (h >>> 8) / 2 ** 24;
  }
  return out;
}

export async function runTentBench(opts: TentBenchOptions = {}): Promise<TentBenchResult> {
  const slices = checkInt('slices', opts.slices ?? 64, 1);
  const batch = checkInt('batch', opts.batch ?? 8, 1);
  const c = REFERENCE_CONFIG;
  const size = checkInt('size', opts.size ?? 64, 2 ** c.depth);
  if (size % 2 ** c.depth !== 0) throw new EngineError('BAD_ARGUMENT', `size ${size} must be divisible by 2^depth = ${2 ** c.depth}`);
  const load0 = loadavg()[0];
  const info = await initEngine(opts.backend !== undefined ? { backend: opts.backend } : {});
  // Imported lazily: the model and adaptation layers import the engine, so static imports would be cycles.
  const { createUNet } = await import('../../model/index.ts');
  const { adaptTent } = await import('../../adapt/index.ts');
  const { compiledUNet, plansEnabled } = await import('../plan/unet-binding.ts');
  const { loadNativeAddon } = await import('../native-addon.ts');
  const nativeLoaded = loadNativeAddon().ok;
  const target = { n: slices, height: size, width: size, channels: 1, images: targetImages(slices, size), spacing: [1, 1] as const, caseIds: Array.from({ length: slices }, (_, i) => `bench-${i}`) };
  const unetConfig = { inChannels: c.inChannels, numClasses: c.numClasses, baseChannels: c.baseChannels, depth: c.depth };

  const saved = process.env.FEDSFDA_ENGINE;
  const runs: TentEpochTime[] = [];
  try {
    for (const engine of ['plan', 'ops'] as const) {
      process.env.FEDSFDA_ENGINE = engine;
      if (engine === 'plan' && !plansEnabled()) continue;
      const unet = createUNet(unetConfig, 1234);
      try {
        // One untimed step-sized warm-up (kernel JIT of tfjs, plan compilation) on a copy of the first batch.
        adaptTent(unet, { ...target, n: batch, images: target.images.subarray(0, batch * size * size), caseIds: target.caseIds.slice(0, batch) }, { batchSize: batch, seed: 0 });
      } finally {
        unet.dispose();
      }
      const fresh = createUNet(unetConfig, 1234);
      try {
        const cpu0 = process.cpuUsage();
        const t0 = performance.now();
        const report = adaptTent(fresh, target, { batchSize: batch, seed: 0 });
        const ms = performance.now() - t0;
        const cpu = process.cpuUsage(cpu0);
        // The model's cached CompiledUNet counts the plan runs (a new one, 0 runs, when the epoch never planned).
        const planRuns = nativeLoaded ? compiledUNet(fresh).runs : 0;
        runs.push({ engine, ms: round(ms, 1), cpuMs: round((cpu.user + cpu.system) / 1000, 1), steps: report.steps, planRuns, firstLoss: round(report.losses[0], 6), lastLoss: round(report.losses.at(-1)!, 6) });
      } finally {
        fresh.dispose();
      }
    }
  } finally {
    if (saved === undefined) delete process.env.FEDSFDA_ENGINE;
    else process.env.FEDSFDA_ENGINE = saved;
  }
  const plan = runs.find((r) => r.engine === 'plan') ?? null;
  const ops = runs.find((r) => r.engine === 'ops')!;
  return {
    backend: info.backend,
    threads: info.threads,
    model: `site-agent/model unet(in=${c.inChannels},classes=${c.numClasses},base=${c.baseChannels},depth=${c.depth}); tent adam lr 1e-3, 1 epoch + AdaBN`,
    slices,
    batch,
    size,
    planEpochMs: plan?.ms ?? null,
    planEpochCpuMs: plan?.cpuMs ?? null,
    opsEpochMs: ops.ms,
    opsEpochCpuMs: ops.cpuMs,
    planSpeedup: plan ? round(ops.ms / plan.ms, 2) : null,
    planCpuSpeedup: plan ? round(ops.cpuMs / plan.cpuMs, 2) : null,
    runs,
    loadAvg: [round(load0, 2), round(loadavg()[0], 2)],
  };
}

function round(v: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(v * f) / f;
}
